// The app side of a streamed result (ResultTag.Stream): undoing the child's record framing, and
// an async byte queue with backpressure that feeds apache-arrow's incremental reader.
import { StreamRecord } from './wire.js';

/**
 * Splits a Stream body into Arrow IPC bytes, the end, or the error frame of a job that failed part
 * way. Bytes come from the child: every length is checked against what may still arrive.
 */
export class Deframer {
  private header = Buffer.alloc(0);
  private left = 0; // bytes of the current record still to come
  state: 'record' | 'data' | 'ended' | 'failed' = 'record';
  /** The error frame (tag + JobError) after a Failed record. */
  errorFrame: Buffer[] = [];

  constructor(
    private readonly onArrow: (bytes: Buffer) => void,
    private readonly maxRecord: number,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.state === 'failed') {
        this.errorFrame.push(chunk.subarray(off));
        return;
      }
      if (this.state === 'ended') throw new Error('bytes after the end of the stream');
      if (this.state === 'record') {
        const need = 4 - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(off, off + need)]);
        off += Math.min(need, chunk.length - off);
        if (this.header.length < 4) return;
        const n = this.header.readUInt32LE(0);
        this.header = Buffer.alloc(0);
        if (n === StreamRecord.End) this.state = 'ended';
        else if (n === StreamRecord.Failed) this.state = 'failed';
        else if (n > this.maxRecord) throw new Error(`a stream record of ${n} bytes exceeds ${this.maxRecord}`);
        else {
          this.left = n;
          this.state = 'data';
        }
        continue;
      }
      const take = Math.min(this.left, chunk.length - off);
      this.onArrow(chunk.subarray(off, off + take));
      off += take;
      this.left -= take;
      if (this.left === 0) this.state = 'record';
    }
  }

  /** Decodes a complete body at once (run() of a streaming job). */
  static collect(body: Buffer, maxRecord: number): { arrow: Buffer; ended: boolean; errorFrame: Buffer | null } {
    const parts: Buffer[] = [];
    const d = new Deframer((b) => parts.push(b), maxRecord);
    d.push(body);
    return { arrow: Buffer.concat(parts), ended: d.state === 'ended', errorFrame: d.state === 'failed' ? Buffer.concat(d.errorFrame) : null };
  }
}

/** Bytes for an async reader, pausing the producer above `highWater` buffered bytes. */
export class ByteQueue implements AsyncIterable<Uint8Array> {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private failure: unknown = null;
  private wake: (() => void) | null = null;
  private paused = false;

  constructor(
    private readonly pause: () => void,
    private readonly resume: () => void,
    private readonly highWater = 4 * 2 ** 20,
  ) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.buffered += b.length;
    if (this.buffered > this.highWater && !this.paused) {
      this.paused = true;
      this.pause();
    }
    this.wake?.();
  }

  end(failure: unknown = null): void {
    this.done = true;
    this.failure ??= failure;
    this.wake?.();
  }

  /** Resolves true once a byte is buffered, false if the queue ends empty. */
  async hasData(): Promise<boolean> {
    while (this.chunks.length === 0 && !this.done) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
    return this.chunks.length > 0;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.buffered -= chunk.length;
        if (this.paused && this.buffered <= this.highWater / 2) {
          this.paused = false;
          this.resume();
        }
        yield chunk;
        continue;
      }
      if (this.done) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}
