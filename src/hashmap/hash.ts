// Remixing of the caller's 32-bit key hash.
//
// pikv picks a partition with `hash % workers`, so every hash reaching one
// table shares its low bits. The table therefore never uses the caller's hash
// directly: it runs murmur3's fmix32 finalizer (a bijection with full
// avalanche), stores the result as the slot's tag, and takes the slot position
// from the tag's HIGH bits.

/** fmix32 of `hash`, as a signed 32-bit integer (the stored tag). */
export function mix32(hash: number): number {
  let h = hash | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h;
}

/** Home slot of `tag` in a slot array of `index_slots` (a power of two >= 2). */
export function homeSlot(tag: number, index_slots: number): number {
  return tag >>> (Math.clz32(index_slots) + 1);
}
