/**
 * One append-only file opened for writing, with the failure rule that keeps logs readable:
 * a write that fails (ENOSPC, EIO, a failed fsync) is cut back off the file, so the next
 * record starts exactly where the last good one ended and a half-written record can never
 * end up in the middle of a log. Writes are positional at `valid_bytes`; if even the cut
 * (ftruncate) fails, every later append retries it first and fails until it succeeds.
 */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';

export class LogFile {
  readonly path: string;
  /** Bytes of the file that hold complete, acknowledged-or-acknowledgeable records. */
  valid_bytes: number;
  /** Written since the last fsync. */
  dirty = false;
  private fd: number;
  private needs_truncate = false;

  private constructor(path: string, fd: number, valid_bytes: number) {
    this.path = path;
    this.fd = fd;
    this.valid_bytes = valid_bytes;
  }

  /** Creates (or empties) `path` with `header` as its content, fsynced. The caller fsyncs the directory. */
  static create(path: string, header: Uint8Array, header_bytes: number): LogFile {
    const fd = openSync(path, 'w');
    const file = new LogFile(path, fd, 0);
    try {
      file.append(header, header_bytes);
      file.sync();
    } catch (error) {
      file.close();
      throw error;
    }
    return file;
  }

  /** Opens an existing file for appending after its first `valid_bytes` (cutting anything beyond). */
  static open(path: string, valid_bytes: number): LogFile {
    const fd = openSync(path, 'r+');
    const file = new LogFile(path, fd, valid_bytes);
    try {
      if (fstatSync(fd).size !== valid_bytes) {
        ftruncateSync(fd, valid_bytes);
        fdatasyncSync(fd);
      }
    } catch (error) {
      file.close();
      throw error;
    }
    return file;
  }

  /** Appends bytes[0..length) in one write call (more only if the kernel writes short). Throws on failure, leaving the file as before. */
  append(bytes: Uint8Array, length: number): void {
    if (this.needs_truncate) this.truncate();
    let written = 0;
    try {
      while (written < length) written += writeSync(this.fd, bytes, written, length - written, this.valid_bytes + written);
    } catch (error) {
      if (written > 0 || this.dirty) this.cutBack();
      throw error;
    }
    this.valid_bytes += length;
    this.dirty = true;
  }

  /** fdatasync. On failure the unsynced tail is cut off (its fate in the page cache is unknown) and the error thrown. */
  sync(): void {
    if (!this.dirty) return;
    fdatasyncSync(this.fd);
    this.dirty = false;
  }

  /** Removes the last `length` bytes appended (used when their fsync failed). */
  unappend(length: number): void {
    this.valid_bytes -= length;
    this.cutBack();
  }

  /** True once nothing is left past `valid_bytes`: at once, unless a failed write's cut is still pending, which this retries. */
  cutBackNow(): boolean {
    if (!this.needs_truncate) return true;
    try {
      this.truncate();
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } finally {
      this.fd = -1;
    }
  }

  private cutBack(): void {
    try {
      this.truncate();
    } catch {
      this.needs_truncate = true;
    }
  }

  private truncate(): void {
    ftruncateSync(this.fd, this.valid_bytes);
    this.needs_truncate = false;
  }
}
