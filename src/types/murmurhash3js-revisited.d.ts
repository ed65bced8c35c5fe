// The package ships no types; this declares the one function pikv's tests use as the reference.
declare module 'murmurhash3js-revisited' {
  const murmur: {
    x86: { hash32(bytes: Uint8Array, seed?: number): number };
  };
  export default murmur;
}
