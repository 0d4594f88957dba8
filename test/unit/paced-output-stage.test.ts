// PacedOutput handing its frames to a stage (another thread writes them, audio/pacer): it stages a few frames ahead,
// counts as written only what the stage has taken, gives the idle frame to the stage, takes staged frames back on a
// pause (and resumes exactly there), on a barge-in and on a rate change, and writes on its own again when the stage
// is lost. The stage here is a plain FIFO that the test drains the way the pacing thread would.

import { describe, expect, it } from 'vitest';
import { OutputClock, type TimeSource } from '../../src/audio/clock.js';
import { RateFollowingPacedOutput, type FrameStage, type FrameWriter } from '../../src/audio/paced-output.js';
import { Resampler } from '../../src/audio/resampler.js';

/** A clock whose timer never fires: ticks are the test's to call. */
const STILL: TimeSource = { now: () => 0, setTimeout: () => ({}), clearTimeout: () => {} };

class FifoStage implements FrameStage {
  usable = true;
  readonly frames: Buffer[] = [];
  /** What "the thread" wrote, in order: frame markers, or 'idle'. */
  readonly wire: Array<number | 'idle'> = [];
  idle: Buffer | null = null;
  more = false;
  syncs = 0;
  constructor(readonly capacity: number) {}
  room(): number {
    return this.capacity - this.frames.length;
  }
  pending(): number {
    return this.frames.length;
  }
  fits(bytes: number): boolean {
    return bytes <= 1924;
  }
  put(frame: Buffer): void {
    if (this.room() <= 0) throw new Error('overfilled');
    this.frames.push(Buffer.from(frame));
  }
  retract(): Buffer[] {
    return this.frames.splice(0);
  }
  setIdle(frame: Buffer | null): void {
    this.idle = frame;
  }
  setMore(more: boolean): void {
    this.more = more;
  }
  sync(): void {
    this.syncs++;
  }
  /** One slot of the pacing thread. */
  slot(): void {
    const f = this.frames.shift();
    if (f !== undefined) this.wire.push(f.readInt16LE(1));
    else if (this.idle !== null) this.wire.push('idle');
  }
}

const writer = (written: Buffer[] = []): FrameWriter => ({
  headerBytes: 1,
  write: (frame) => void written.push(Buffer.from(frame)),
  silence: (rate) => Buffer.alloc(1 + rate / 25),
  prepare: (frame, rate) => void (frame[0] = rate / 1000),
});

/** `n` 8 kHz frames whose samples carry 1, 2, … */
function frames(n: number, first = 1): Buffer {
  const pcm = Buffer.alloc(n * 320);
  for (let f = 0; f < n; f++) for (let i = 0; i < 160; i++) pcm.writeInt16LE(first + f, f * 320 + i * 2);
  return pcm;
}

function setup(capacity = 3): { out: RateFollowingPacedOutput; stage: FifoStage; events: string[]; written: Buffer[] } {
  const stage = new FifoStage(capacity);
  const written: Buffer[] = [];
  const out = new RateFollowingPacedOutput({ rate: 8000, writer: writer(written), maxFrames: 100, stage });
  const events: string[] = [];
  out.setPlaybackListener({ playbackStarted: () => events.push('start'), playbackStopped: () => events.push('stop') });
  out.start(new OutputClock({ time: STILL }));
  return { out, stage, events, written };
}

describe('PacedOutput on a stage', () => {
  it('stages up to the stage’s room at once, and counts as written only what the stage took', () => {
    const { out, stage, events, written } = setup(3);
    expect(stage.idle?.length).toBe(321);
    out.push(frames(5));
    expect(stage.pending()).toBe(3);
    expect(stage.frames[0]?.[0]).toBe(8); // the writer's header went on before staging
    expect(stage.more).toBe(true);
    expect(out.queuedFrames).toBe(5);
    expect(out.botFramesWritten).toBe(0);
    expect(events).toEqual([]); // staged is not yet on the wire
    stage.slot();
    stage.slot();
    expect(out.botFramesWritten).toBe(2);
    out.tick();
    expect(events).toEqual(['start']);
    expect(stage.syncs).toBe(1);
    expect(stage.pending()).toBe(3);
    expect(stage.more).toBe(false);
    for (let i = 0; i < 4; i++) {
      stage.slot();
      out.tick();
    }
    expect(stage.wire).toEqual([1, 2, 3, 4, 5, 'idle']);
    expect(events).toEqual(['start', 'stop']);
    expect(out.botFramesWritten).toBe(5);
    expect(written).toHaveLength(0); // nothing went through the main thread's writer
  });

  it('playback starts once the stage took the first frame, and stops once it took the last', () => {
    const { out, stage, events } = setup(3);
    out.push(frames(2));
    out.tick();
    expect(events).toEqual([]);
    stage.slot();
    out.tick();
    expect(events).toEqual(['start']);
    stage.slot();
    out.tick();
    expect(events).toEqual(['start', 'stop']);
  });

  it('a pause takes the staged frames back, and resuming plays on from exactly there', () => {
    const { out, stage } = setup(3);
    out.push(frames(6));
    stage.slot();
    out.tick();
    out.setPaused(true);
    expect(stage.pending()).toBe(0);
    expect(out.queuedFrames).toBe(5);
    expect(out.botFramesWritten).toBe(1);
    out.tick();
    stage.slot();
    out.setPaused(false);
    for (let i = 0; i < 6; i++) {
      stage.slot();
      out.tick();
    }
    expect(stage.wire.filter((w) => w !== 'idle')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(out.botFramesWritten).toBe(6);
  });

  it('a barge-in drops what is staged as well as what is queued', () => {
    const { out, stage, events } = setup(3);
    out.push(frames(10));
    stage.slot();
    out.clear();
    expect(stage.pending()).toBe(0);
    expect(out.queuedFrames).toBe(0);
    expect(out.botFramesWritten).toBe(1);
    out.tick();
    stage.slot();
    expect(stage.wire).toEqual([1, 'idle']);
    expect(events).toEqual(['start', 'stop']);
  });

  it('a run taken back before any of it was written is neither started nor stopped', () => {
    const { out, stage, events } = setup(3);
    out.push(frames(2));
    out.clear();
    out.tick();
    stage.slot();
    out.tick();
    expect(events).toEqual([]);
    expect(stage.wire).toEqual(['idle']);
  });

  it('a rate change converts the staged frames with the queue and gives the stage the new idle frame', async () => {
    const { out, stage } = setup(3);
    out.push(frames(4));
    out.changeRate(await Resampler.create(8000, 16000, 'sinc_fastest'));
    expect(stage.idle?.length).toBe(641);
    expect(out.sampleRate).toBe(16000);
    expect(out.queuedFrames).toBe(4);
    out.tick();
    expect(stage.pending()).toBe(3);
    expect(stage.frames.every((f) => f.length === 641 && f[0] === 16)).toBe(true);
  });

  it('a rate whose frames do not fit the stage: the stage is let go and the output writes them itself', async () => {
    const onLost: string[] = [];
    const stage = new FifoStage(3);
    const written: Buffer[] = [];
    const out = new RateFollowingPacedOutput({ rate: 8000, writer: writer(written), maxFrames: 100, stage, onStageLost: () => onLost.push('lost') });
    out.start(new OutputClock({ time: STILL }));
    out.push(frames(2));
    out.changeRate(await Resampler.create(8000, 96000, 'sinc_fastest'));
    expect(onLost).toEqual(['lost']);
    expect(out.staged).toBe(false);
    expect(stage.idle?.length).toBe(321); // never handed a frame it cannot hold
    out.tick();
    expect(written).toHaveLength(1);
    expect(written[0]?.length).toBe(1 + 3840);
  });

  it('a lost stage: its frames come back and the output writes them itself, in order', () => {
    const onLost: string[] = [];
    const stage = new FifoStage(3);
    const written: Buffer[] = [];
    const out = new RateFollowingPacedOutput({
      rate: 8000,
      writer: writer(written),
      maxFrames: 100,
      stage,
      onStageLost: () => onLost.push('lost'),
    });
    out.start(new OutputClock({ time: STILL }));
    out.push(frames(5));
    stage.slot();
    stage.usable = false;
    for (let i = 0; i < 5; i++) out.tick();
    expect(onLost).toEqual(['lost']);
    expect(out.staged).toBe(false);
    expect(written.slice(0, 4).map((f) => f.readInt16LE(1))).toEqual([2, 3, 4, 5]);
    expect(written[4]?.readInt16LE(1)).toBe(0); // then silence
  });
});
