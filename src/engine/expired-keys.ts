/**
 * Keys a partition worker found expired, collected before it deletes them: their deletes are
 * logged first (with --data-dir), then applied by key (workers/partition-worker.ts). Bounded by
 * the caller: a packet's ops, or one active-expiry step's finds.
 */
export class ExpiredKeys {
  count = 0;
  hashes: Uint32Array = new Uint32Array(256);
  key_offsets: Uint32Array = new Uint32Array(256);
  key_lengths: Uint32Array = new Uint32Array(256);
  keys: Uint8Array = new Uint8Array(16 * 1024);
  private key_bytes = 0;

  clear(): void {
    this.count = 0;
    this.key_bytes = 0;
  }

  /** Room for a key of `key_length` bytes; returns the offset to copy it to, and records it. */
  add(hash: number, key_length: number): number {
    if (this.count === this.hashes.length) {
      this.hashes = grow32(this.hashes);
      this.key_offsets = grow32(this.key_offsets);
      this.key_lengths = grow32(this.key_lengths);
    }
    if (this.key_bytes + key_length > this.keys.length) {
      const keys = new Uint8Array(Math.max(this.keys.length * 2, this.key_bytes + key_length));
      keys.set(this.keys.subarray(0, this.key_bytes));
      this.keys = keys;
    }
    const offset = this.key_bytes;
    this.hashes[this.count] = hash;
    this.key_offsets[this.count] = offset;
    this.key_lengths[this.count] = key_length;
    this.count++;
    this.key_bytes += key_length;
    return offset;
  }
}

function grow32(array: Uint32Array): Uint32Array {
  const grown = new Uint32Array(array.length * 2);
  grown.set(array);
  return grown;
}
