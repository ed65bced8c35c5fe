/**
 * Ops per joule, ESTIMATED: there is no power meter, so energy comes from measured CPU
 * seconds and a table of typical board and server power figures (docs/PERFORMANCE.md,
 * "Energy", has the sources and caveats). The bench (bench/lib/energy.ts) and the node's
 * metrics and dashboard use this one model:
 *
 *   J = P_idle · t_wall + (P_load − P_idle) · cpu_s / cores
 *
 * i.e. the box is charged its idle power for the whole time, plus the extra power of its
 * cores for the share of them the process kept busy. CPU seconds are those of the machine
 * that measured them; measured on a Pi they are the Pi's own. FAWN-KV (SOSP 2009) reported
 * about 350 queries per joule.
 */

export interface PowerProfile {
  name: string;
  idle_w: number;
  load_w: number;
  cores: number;
}

export const POWER_TABLE: readonly PowerProfile[] = [
  { name: 'Raspberry Pi 3B', idle_w: 1.4, load_w: 3.7, cores: 4 },
  { name: 'Raspberry Pi 4B', idle_w: 2.7, load_w: 6.4, cores: 4 },
  { name: 'Raspberry Pi 5', idle_w: 2.7, load_w: 8.8, cores: 4 },
  { name: 'x86 server (2 socket)', idle_w: 100, load_w: 300, cores: 32 },
];

/** The profile the dashboard and `pikv top` show: the board pikv is made for. */
export const DEFAULT_POWER_PROFILE = 'Raspberry Pi 4B';

export const FAWN_KV_QUERIES_PER_JOULE = 350;

export function joules(profile: PowerProfile, wall_s: number, cpu_s: number): number {
  return profile.idle_w * wall_s + (profile.load_w - profile.idle_w) * Math.min(cpu_s, wall_s * profile.cores) / profile.cores;
}

/** Estimated ops per joule on every profile of the table. */
export function opsPerJoule(ops: number, wall_s: number, cpu_s: number): Record<string, number> {
  const result: Record<string, number> = {};
  for (const profile of POWER_TABLE) result[profile.name] = Math.round(ops / joules(profile, wall_s, cpu_s));
  return result;
}

export function powerProfile(name: string): PowerProfile {
  const profile = POWER_TABLE.find((p) => p.name === name);
  if (profile === undefined) throw new Error(`no power profile ${JSON.stringify(name)}`);
  return profile;
}
