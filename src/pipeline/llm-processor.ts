// Runs the LLM on the context when asked (llm_run), streaming its text down as it arrives, executing tool calls
// and running again when a tool asks for it. A barge-in aborts the HTTP stream at once (SPEC §3.4).
// A speculative run (preemptive generation, issue 13) answers a user turn that has not ended yet: it sees the
// context plus the words so far, changes nothing in the context, runs no tools, and stays in flight until the turn
// commits or it is thrown away; one that asks for tools is replaced by an ordinary run at commit.

import type { ChatMessage } from '../model/pipecatcall.js';
import type { LlmClient, LlmTool, LlmToolCall } from '../providers/types.js';
import type { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';
import type { TurnTracker } from './turn-record.js';

export interface ToolOutcome {
  /** The tool result as JSON text: it goes into the context verbatim. */
  result: string;
  /** Run the LLM again after the results (run_llm, or an error the model should explain). */
  runLlm: boolean;
  /** End the call once the current reply has been spoken (stop_service on a `call` reference). */
  endCall: boolean;
}

export interface ToolExecutor {
  readonly tools: readonly LlmTool[];
  execute(call: LlmToolCall, signal: AbortSignal): Promise<ToolOutcome>;
}

/** Tool rounds in one generation before the model is cut off (a model stuck calling tools). */
const MAX_TOOL_ROUNDS = 5;
/** Consecutive failed generations before the call ends with llm_error. */
const MAX_FAILURES = 2;

export class LlmProcessor extends FrameProcessor {
  private current: AbortController | null = null;
  private failures = 0;
  private closed = false;
  /** The speculative run in flight (or finished, its reply held), until its turn commits or it is thrown away. */
  private speculation: { audio: boolean; needsRerun: boolean } | null = null;

  constructor(
    private readonly llm: LlmClient,
    private readonly context: ConversationContext,
    private readonly tools: ToolExecutor | null,
    private readonly bot: BotState,
    private readonly observer: PipelineObserver,
    private readonly callSignal: AbortSignal,
    private readonly tracker: TurnTracker | null = null,
  ) {
    super();
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'llm_run') {
      this.start(frame.audio, frame.speculative);
      return;
    }
    if (direction === 'down' && frame.type === 'turn_commit') {
      this.commit();
      return;
    }
    if (frame.type === 'interruption') {
      this.cancel();
      this.speculation = null;
    }
    this.push(frame, direction);
  }

  /** The speculative run's turn ended as predicted: its reply may play, unless it needs tools (then run anew). */
  private commit(): void {
    const spec = this.speculation;
    this.speculation = null;
    if (spec === null) {
      // The speculative run was cancelled meanwhile: the turn still gets its reply (preemptive runs are spoken).
      this.push({ type: 'interruption', speculative: true });
      this.start(true);
      return;
    }
    if (!spec.needsRerun) {
      this.push({ type: 'turn_commit' });
      return;
    }
    this.cancel();
    this.push({ type: 'interruption', speculative: true });
    this.start(spec.audio);
  }

  private cancel(): void {
    this.current?.abort();
    this.current = null;
  }

  private start(audio: boolean, speculative?: string): void {
    if (this.closed || this.callSignal.aborted) return;
    this.cancel();
    const gen = new AbortController();
    this.current = gen;
    if (speculative === undefined) {
      this.speculation = null;
      this.bot.generating = true;
      this.push({ type: 'llm_started', audio });
    } else {
      this.speculation = { audio, needsRerun: false };
      this.push({ type: 'llm_started', audio, speculative: true });
    }
    this.observer.botLlmStarted();
    this.tracker?.reply('llmRequestAt', speculative !== undefined);
    void this.run(gen, speculative);
  }

  private async run(gen: AbortController, speculative?: string): Promise<void> {
    const signal = AbortSignal.any([this.callSignal, gen.signal]);
    let failed = false;
    try {
      for (let round = 1; ; round++) {
        const calls = await this.generate(signal, speculative);
        if (signal.aborted) return;
        if (calls.length === 0) break;
        if (speculative !== undefined) {
          // Tools have effects (hang up, transfer): never run them for a turn that may go on.
          if (this.speculation !== null) this.speculation.needsRerun = true;
          return;
        }
        const again = await this.runTools(calls, signal);
        if (signal.aborted) return;
        if (!again || round >= MAX_TOOL_ROUNDS) break;
      }
      this.failures = 0;
    } catch (err) {
      if (signal.aborted) return;
      if (speculative !== undefined) {
        // Not counted towards ending the call: the turn gets an ordinary run when it commits.
        this.observer.providerError('llm', this.llm.name, err);
        if (this.speculation !== null) this.speculation.needsRerun = true;
        return;
      }
      failed = true;
      this.failures++;
      this.observer.providerError('llm', this.llm.name, err);
      if (this.failures >= MAX_FAILURES) this.push({ type: 'end_call', reason: 'llm_error' }, 'up');
    } finally {
      if (this.current === gen) this.current = null;
    }
    if (signal.aborted) return;
    this.observer.botLlmStopped();
    this.push({ type: 'llm_stopped', failed });
  }

  /** One streamed completion; returns the tool calls it asked for (none → the reply is complete). */
  private async generate(signal: AbortSignal, speculative?: string): Promise<LlmToolCall[]> {
    const started = performance.now();
    let first = true;
    let text = '';
    let calls: LlmToolCall[] = [];
    const messages = speculative === undefined ? this.context.messages : withUserText(this.context.messages, speculative);
    for await (const chunk of this.llm.stream({ messages, tools: this.tools?.tools ?? [], signal })) {
      if (signal.aborted) return [];
      if (first) {
        first = false;
        this.observer.latency('llm_ttft', (performance.now() - started) / 1000);
        // A speculative run whose turn has committed answers that turn now, like an ordinary one.
        this.tracker?.reply('llmFirstTokenAt', speculative !== undefined && this.speculation !== null);
      }
      if (chunk.type === 'text') {
        if (chunk.text === '') continue;
        text += chunk.text;
        this.observer.botLlmText(chunk.text);
        this.push({ type: 'llm_text', text: chunk.text });
      } else {
        calls = chunk.calls;
      }
    }
    if (calls.length > 0 && speculative === undefined) {
      this.context.addToolCalls(text, calls);
      this.push({ type: 'llm_tool_calls', calls });
    }
    return calls;
  }

  private async runTools(calls: LlmToolCall[], signal: AbortSignal): Promise<boolean> {
    let again = false;
    let endCall = false;
    for (const call of calls) {
      const outcome: ToolOutcome =
        this.tools === null
          ? { result: JSON.stringify({ status: 'error', error: `no tool named ${call.name}` }), runLlm: true, endCall: false }
          : await this.tools.execute(call, signal);
      if (signal.aborted) return false;
      this.context.addToolResult(call.id, outcome.result);
      again ||= outcome.runLlm;
      endCall ||= outcome.endCall;
    }
    if (endCall) this.push({ type: 'end_after_reply' });
    return again && !endCall;
  }

  override close(): void {
    this.closed = true;
    this.cancel();
  }
}

/**
 * The messages the LLM would see once the user's text is in the context: the same merge as
 * ConversationContext.addUser (a trailing plain user message gets the text on a new line), without touching it.
 */
export function withUserText(messages: readonly ChatMessage[], text: string): ChatMessage[] {
  const out = messages.slice();
  const last = out[out.length - 1];
  if (last?.role === 'user' && typeof last.content === 'string' && last.tool_calls === undefined) {
    out[out.length - 1] = { ...last, content: `${last.content}\n${text}` };
  } else {
    out.push({ role: 'user', content: text });
  }
  return out;
}
