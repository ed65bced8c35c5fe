/**
 * Redis's glob patterns (CONFIG GET, and later SCAN MATCH): `*` any run, `?` any one char,
 * `[abc]`, `[a-z]` and `[^a]` classes, and `\x` for a literal x. Iterative with one
 * backtrack point for `*`, so a hostile pattern costs at most pattern × text steps.
 */
export function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star_p = -1;
  let star_t = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star_p = p++;
      star_t = t;
      continue;
    }
    if (p < pattern.length) {
      const step = matchOne(pattern, p, text[t]!);
      if (step > 0) {
        p += step;
        t++;
        continue;
      }
    }
    if (star_p < 0) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** If pattern[p..] (one char, `?`, an escape or a class) matches `char`, how many pattern chars it took; else 0. */
function matchOne(pattern: string, p: number, char: string): number {
  const head = pattern[p]!;
  if (head === '?') return 1;
  if (head === '\\' && p + 1 < pattern.length) return pattern[p + 1] === char ? 2 : 0;
  if (head !== '[') return head === char ? 1 : 0;
  let i = p + 1;
  const negate = pattern[i] === '^';
  if (negate) i++;
  let matched = false;
  while (i < pattern.length && pattern[i] !== ']') {
    if (pattern[i] === '\\' && i + 1 < pattern.length) {
      if (pattern[i + 1] === char) matched = true;
      i += 2;
    } else if (i + 2 < pattern.length && pattern[i + 1] === '-' && pattern[i + 2] !== ']') {
      const [low, high] = [pattern[i]!, pattern[i + 2]!].sort();
      if (char >= low! && char <= high!) matched = true;
      i += 3;
    } else {
      if (pattern[i] === char) matched = true;
      i++;
    }
  }
  // An unclosed class is taken as running to the end of the pattern, as Redis does.
  const taken = Math.min(i + 1, pattern.length) - p;
  return matched !== negate ? Math.max(taken, 1) : 0;
}
