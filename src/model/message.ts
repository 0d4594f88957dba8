// The Message carried by message_* events and returned by POST /v1/messages (SPEC §7.2).

import { goEncodeStruct } from './go-json.js';

export interface Message {
  id: string;
  customer_id: string;
  pipecatcall_id: string;
  pipecatcall_reference_type: string;
  pipecatcall_reference_id: string;
  text: string;
}

export function encodeMessage(m: Message): string {
  return goEncodeStruct([
    ['id', m.id],
    ['customer_id', m.customer_id],
    ['pipecatcall_id', m.pipecatcall_id],
    ['pipecatcall_reference_type', m.pipecatcall_reference_type, true],
    ['pipecatcall_reference_id', m.pipecatcall_reference_id],
    ['text', m.text, true],
  ]);
}
