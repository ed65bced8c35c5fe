/**
 * Renders a read group's replies, in command order, once all its batches are answered.
 *
 * A command with several ops (MSET, DEL, MGET, EXISTS) answers the first error among them,
 * if any op failed with something other than NOT_FOUND: a Redis client expects one reply per
 * command. The other ops of that command may have been applied (MSET is not atomic in pikv).
 */
import { Status } from '../../protocol/constants.js';
import type { PendingRequest } from '../../engine/pending-request.js';
import { ReplyKind, type ReadGroup, type ReplyPlan } from './read-group.js';
import type { ReplyWriter } from './reply-writer.js';
import { statusErrorText, type ErrorLimits } from './status-errors.js';

/** What late replies (DBSIZE, INFO) read when they are rendered. */
export interface RenderSource {
  readonly error_limits: ErrorLimits;
  keyCount(): number;
  infoText(sections: string[]): string;
}

export function renderGroup(group: ReadGroup, source: RenderSource, writer: ReplyWriter): void {
  // EXISTS fetched values only to learn that keys exist: drop them before the response size
  // limit is applied, so they neither count against it nor get copied.
  for (const plan of group.plans) {
    if (plan.kind !== ReplyKind.EXISTING) continue;
    const request = group.requests[plan.batch]!;
    for (let i = plan.first_op; i < plan.first_op + plan.op_count; i++) request.value_length[i] = 0;
  }
  for (const request of group.requests) request.limitValues();
  for (const plan of group.plans) renderPlan(plan, group, source, writer);
}

function renderPlan(plan: ReplyPlan, group: ReadGroup, source: RenderSource, writer: ReplyWriter): void {
  if (plan.kind === ReplyKind.FIXED || plan.kind === ReplyKind.ASYNC) {
    writer.raw(plan.fixed!);
    return;
  }
  if (plan.kind === ReplyKind.DBSIZE) {
    writer.integer(source.keyCount());
    return;
  }
  if (plan.kind === ReplyKind.INFO) {
    writer.bulk(source.infoText(plan.sections ?? []));
    return;
  }
  const request = group.requests[plan.batch]!;
  const first = plan.first_op;
  const end = first + plan.op_count;
  // EXISTS counts a key whose value did not fit the response as existing: it was found.
  const failed = firstError(request, first, end, plan.kind === ReplyKind.EXISTING ? Status.RESPONSE_TOO_LARGE : Status.OK);
  if (failed >= 0) {
    writer.error(statusErrorText(request.status[failed]!, source.error_limits));
    return;
  }
  switch (plan.kind) {
    case ReplyKind.GET:
      if (request.status[first] === Status.OK) writer.bulkFromRequest(request, first);
      else writer.nullBulk();
      return;
    case ReplyKind.OK:
      writer.simple('OK');
      return;
    case ReplyKind.SET_IF_ABSENT:
    case ReplyKind.SET_IF_PRESENT:
      // The op answers whether the key existed before; NX wrote when it did not, XX when it did.
      if ((request.status[first] === Status.OK) === (plan.kind === ReplyKind.SET_IF_PRESENT)) writer.simple('OK');
      else writer.nullBulk();
      return;
    case ReplyKind.SETNX:
      writer.integer(request.status[first] === Status.NOT_FOUND ? 1 : 0);
      return;
    case ReplyKind.DELETED:
    case ReplyKind.EXISTING: {
      let count = 0;
      for (let i = first; i < end; i++) if (request.status[i] !== Status.NOT_FOUND) count++;
      writer.integer(count);
      return;
    }
    case ReplyKind.TTL_SECONDS:
    case ReplyKind.TTL_MS: {
      if (request.status[first] === Status.NOT_FOUND) return void writer.integer(-2);
      if (request.value_length[first] !== 8) return void writer.integer(-1);
      const bytes = Buffer.allocUnsafe(8);
      request.copyValue(first, bytes, 0);
      const remaining_ms = Math.max(0, bytes.readDoubleLE(0));
      // Redis rounds TTL's seconds to the nearest one.
      writer.integer(plan.kind === ReplyKind.TTL_MS ? remaining_ms : Math.floor((remaining_ms + 500) / 1000));
      return;
    }
    case ReplyKind.VALUES:
      writer.arrayHeader(plan.op_count);
      for (let i = first; i < end; i++) {
        if (request.status[i] === Status.OK) writer.bulkFromRequest(request, i);
        else writer.nullBulk();
      }
      return;
  }
}

/** Index of the first op in [first, end) whose status is an error (not OK, NOT_FOUND or `also_fine`); -1 if none. */
function firstError(request: PendingRequest, first: number, end: number, also_fine: number): number {
  for (let i = first; i < end; i++) {
    const status = request.status[i]!;
    if (status !== Status.OK && status !== Status.NOT_FOUND && status !== also_fine) return i;
  }
  return -1;
}
