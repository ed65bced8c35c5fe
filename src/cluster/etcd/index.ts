/**
 * The etcd layer of cluster membership (issue #9): key layout, signed view with
 * compare-and-swap and watch, session lease with a fencing deadline, live members, controller
 * election. It imports only Node built-ins, etcd3/cockatiel and src/routing, so the node can
 * build on it without cycles. Design: docs/ETCD.md.
 */
export * from './client.js';
export * from './election.js';
export * from './errors.js';
export * from './keys.js';
export * from './members.js';
export * from './session.js';
export * from './signed-view.js';
export * from './view-store.js';
