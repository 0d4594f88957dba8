// Runs the LLM on the context when asked (llm_run), streaming its text down as it arrives, executing tool calls
// and running again when a tool asks for it. A barge-in aborts the HTTP stream at once (SPEC §3.4).

import type { LlmClient, LlmTool, LlmToolCall } from '../providers/types.js';
import type { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';

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

  constructor(
    private readonly llm: LlmClient,
    private readonly context: ConversationContext,
    private readonly tools: ToolExecutor | null,
    private readonly bot: BotState,
    private readonly observer: PipelineObserver,
    private readonly callSignal: AbortSignal,
  ) {
    super();
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'llm_run') {
      this.start(frame.audio);
      return;
    }
    if (frame.type === 'interruption') this.cancel();
    this.push(frame, direction);
  }

  private cancel(): void {
    this.current?.abort();
    this.current = null;
  }

  private start(audio: boolean): void {
    if (this.closed || this.callSignal.aborted) return;
    this.cancel();
    const gen = new AbortController();
    this.current = gen;
    this.bot.generating = true;
    this.push({ type: 'llm_started', audio });
    this.observer.botLlmStarted();
    void this.run(gen);
  }

  private async run(gen: AbortController): Promise<void> {
    const signal = AbortSignal.any([this.callSignal, gen.signal]);
    let failed = false;
    try {
      for (let round = 1; ; round++) {
        const calls = await this.generate(signal);
        if (signal.aborted) return;
        if (calls.length === 0) break;
        const again = await this.runTools(calls, signal);
        if (signal.aborted) return;
        if (!again || round >= MAX_TOOL_ROUNDS) break;
      }
      this.failures = 0;
    } catch (err) {
      if (signal.aborted) return;
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
  private async generate(signal: AbortSignal): Promise<LlmToolCall[]> {
    const started = performance.now();
    let first = true;
    let text = '';
    let calls: LlmToolCall[] = [];
    for await (const chunk of this.llm.stream({ messages: this.context.messages, tools: this.tools?.tools ?? [], signal })) {
      if (signal.aborted) return [];
      if (first) {
        first = false;
        this.observer.latency('llm_ttft', (performance.now() - started) / 1000);
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
    if (calls.length > 0) {
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
