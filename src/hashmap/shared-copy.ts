/**
 * Copies between the table's shared memory and ordinary memory, at memcpy speed.
 *
 * Why not one TypedArray#set: V8 copies to or from a SharedArrayBuffer with relaxed atomic
 * word accesses, and when the two addresses differ modulo 8 it falls back to one byte at a
 * time. Measured on this machine (Node 20, 1 MiB, session 5): 1.0-1.9 ms per copy with the
 * addresses 4 or 6 bytes apart modulo 8, against 0.1-0.3 ms with them equal; copies between
 * ordinary buffers are a memcpy at any alignment. A table value starts right after its key, so
 * its address modulo 8 is whatever the key length makes it, and a 1 MiB GET spent most of its
 * main-thread time in that byte loop.
 *
 * So a large copy with mismatched addresses goes through a private staging buffer placed at
 * the shared side's address modulo 8: one ordinary copy (any alignment) and one shared copy
 * (same alignment), both fast. Into shared memory the last step is a single set() call, so a
 * worker terminated mid-copy never leaves half a value in place (table.ts overwrite()).
 */

/** Below this, the byte-at-a-time copy costs less than staging's extra view objects. */
const STAGE_BYTES_MIN = 256;
/** The staging buffer kept between calls; larger copies stage in a buffer of their own. */
const STAGE_KEPT_BYTES_MAX = 1024 * 1024 + 8;

let kept_stage = new Uint8Array(0);

function stageFor(bytes: number): Uint8Array {
  if (bytes > STAGE_KEPT_BYTES_MAX) return new Uint8Array(bytes);
  if (kept_stage.length < bytes) kept_stage = new Uint8Array(Math.min(STAGE_KEPT_BYTES_MAX, Math.max(bytes, 2 * kept_stage.length)));
  return kept_stage;
}

function addressMod8(array: Uint8Array, offset: number): number {
  return (array.byteOffset + offset) & 7;
}

/** Copies shared[shared_offset..+length] to target[target_offset..] (target: ordinary memory). */
export function copyFromShared(shared: Uint8Array, shared_offset: number, length: number, target: Uint8Array, target_offset: number): void {
  const shared_mod = addressMod8(shared, shared_offset);
  const source = shared.subarray(shared_offset, shared_offset + length);
  if (length < STAGE_BYTES_MIN || shared_mod === addressMod8(target, target_offset)) {
    target.set(source, target_offset);
    return;
  }
  const stage = stageFor(length + 8);
  stage.set(source, shared_mod);
  target.set(stage.subarray(shared_mod, shared_mod + length), target_offset);
}

/** Copies source[source_offset..+length] (ordinary memory) to shared[shared_offset..], ending in one set() call. */
export function copyIntoShared(shared: Uint8Array, shared_offset: number, source: Uint8Array, source_offset: number, length: number): void {
  const shared_mod = addressMod8(shared, shared_offset);
  const whole = source_offset === 0 && length === source.length;
  const part = whole ? source : source.subarray(source_offset, source_offset + length);
  if (length < STAGE_BYTES_MIN || shared_mod === addressMod8(source, source_offset)) {
    shared.set(part, shared_offset);
    return;
  }
  const stage = stageFor(length + 8);
  stage.set(part, shared_mod);
  shared.set(stage.subarray(shared_mod, shared_mod + length), shared_offset);
}
