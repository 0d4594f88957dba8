// pipecat-control: the operator CLI (SPEC §10). JSON results on stdout, errors on stderr as {"error":"…"};
// exit 0 success, 1 failure, 2 usage error. Talks to the daemon over RabbitMQ RPC, and to its Audiosocket
// server for `call dial`.

import { runControl } from './control-run.js';

const outcome = await runControl(process.argv.slice(2), process.env, process.cwd());
process.stdout.write(outcome.stdout);
process.stderr.write(outcome.stderr);
process.exitCode = outcome.code;
