/**
 * Ops per joule, ESTIMATED, for bench reports: the model lives in the node
 * (src/node/metrics/energy.ts) so the bench, /metrics and the dashboard use the same one.
 */
export { FAWN_KV_QUERIES_PER_JOULE, joules, opsPerJoule, POWER_TABLE, type PowerProfile } from '../../src/node/metrics/energy.js';
