/**
 * A sliding read window over a file, so recovery reads logs of any size in bounded memory.
 *
 * `ensure(offset, length)` makes file bytes [offset, offset + length) available at
 * `bytes[offset - base]`, reading from `offset` on a miss (positional reads, so going back is
 * allowed). The window is WINDOW_BYTES unless one record is larger, then that record's size.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const WINDOW_BYTES = 8 * 1024 * 1024;

export class FileWindow {
  readonly size: number;
  bytes: Uint8Array = new Uint8Array(WINDOW_BYTES);
  /** File offset of bytes[0]. */
  base = 0;
  private end = 0;
  private readonly fd: number;
  bytes_read = 0;

  constructor(path: string, size: number) {
    this.fd = openSync(path, 'r');
    this.size = size;
  }

  /** False if the range runs past the end of the file. */
  ensure(offset: number, length: number): boolean {
    if (offset + length > this.size) return false;
    if (offset >= this.base && offset + length <= this.end) return true;
    if (length > this.bytes.length) this.bytes = new Uint8Array(length);
    const want = Math.min(this.bytes.length, this.size - offset);
    let filled = 0;
    while (filled < want) {
      const got = readSync(this.fd, this.bytes, filled, want - filled, offset + filled);
      if (got === 0) break;
      filled += got;
    }
    this.bytes_read += filled;
    this.base = offset;
    this.end = offset + filled;
    return offset + length <= this.end;
  }

  close(): void {
    closeSync(this.fd);
  }
}
