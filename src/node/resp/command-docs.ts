/**
 * COMMAND, COMMAND INFO, COMMAND DOCS, COMMAND COUNT and COMMAND LIST replies, built from the
 * command table. redis-cli 7 asserts on the shape of COMMAND DOCS (maps as flat arrays,
 * argument flags as status replies, every argument with a type), so the layout here follows
 * Redis 7.0's exactly. The whole-table replies never change and are encoded once.
 */
import { COMMANDS, findCommand, type ArgumentDoc, type CommandSpec } from './command-table.js';
import { encodeReply, type ReplyWriter } from './reply-writer.js';

function writeInfo(writer: ReplyWriter, command: CommandSpec): void {
  writer.arrayHeader(10).bulk(command.name).integer(command.arity);
  writer.arrayHeader(command.flags.length);
  for (const flag of command.flags) writer.simple(flag);
  writer.integer(command.first_key).integer(command.last_key).integer(command.key_step);
  writer.arrayHeader(command.acl_categories.length);
  for (const category of command.acl_categories) writer.simple(category);
  writer.arrayHeader(0); // tips
  writer.arrayHeader(0); // key specs
  const subcommands = command.subcommands ?? [];
  writer.arrayHeader(subcommands.length);
  for (const sub of subcommands) writeInfo(writer, sub);
}

function writeArgument(writer: ReplyWriter, argument: ArgumentDoc): void {
  const flags: string[] = [];
  if (argument.optional === true) flags.push('optional');
  if (argument.multiple === true) flags.push('multiple');
  const fields = 2 + (argument.token !== undefined ? 1 : 0) + (flags.length > 0 ? 1 : 0) + (argument.arguments !== undefined ? 1 : 0);
  writer.arrayHeader(fields * 2);
  writer.bulk('name').bulk(argument.name).bulk('type').bulk(argument.type);
  if (argument.token !== undefined) writer.bulk('token').bulk(argument.token);
  if (flags.length > 0) {
    writer.bulk('flags').arrayHeader(flags.length);
    for (const flag of flags) writer.simple(flag);
  }
  if (argument.arguments !== undefined) {
    writer.bulk('arguments').arrayHeader(argument.arguments.length);
    for (const inner of argument.arguments) writeArgument(writer, inner);
  }
}

function writeDocs(writer: ReplyWriter, command: CommandSpec): void {
  const subcommands = command.subcommands ?? [];
  writer.arrayHeader((4 + (subcommands.length > 0 ? 1 : 0)) * 2);
  writer.bulk('summary').bulk(command.summary).bulk('since').bulk(command.since).bulk('group').bulk(command.group);
  writer.bulk('arguments').arrayHeader(command.arguments.length);
  for (const argument of command.arguments) writeArgument(writer, argument);
  if (subcommands.length > 0) {
    writer.bulk('subcommands').arrayHeader(subcommands.length * 2);
    for (const sub of subcommands) {
      writer.bulk(sub.name);
      writeDocs(writer, sub);
    }
  }
}

let all_info: Buffer | null = null;
let all_docs: Buffer | null = null;

/** COMMAND (no arguments): every command's info. */
export function commandInfoAll(): Buffer {
  all_info ??= encodeReply((writer) => {
    writer.arrayHeader(COMMANDS.length);
    for (const command of COMMANDS) writeInfo(writer, command);
  });
  return all_info;
}

/** COMMAND INFO name...: one entry per name, nil for names not served. */
export function commandInfo(names: string[]): Buffer {
  return encodeReply((writer) => {
    writer.arrayHeader(names.length);
    for (const name of names) {
      const command = findCommand(name);
      if (command === undefined) writer.nullBulk();
      else writeInfo(writer, command);
    }
  });
}

/** COMMAND DOCS [name...]: a map (flat array) of name to docs; names not served are left out, as Redis does. */
export function commandDocs(names: string[]): Buffer {
  if (names.length === 0) {
    all_docs ??= encodeReply((writer) => {
      writer.arrayHeader(COMMANDS.length * 2);
      for (const command of COMMANDS) {
        writer.bulk(command.name);
        writeDocs(writer, command);
      }
    });
    return all_docs;
  }
  const found = names.map((name) => findCommand(name)).filter((command): command is CommandSpec => command !== undefined);
  return encodeReply((writer) => {
    writer.arrayHeader(found.length * 2);
    for (const command of found) {
      writer.bulk(command.name);
      writeDocs(writer, command);
    }
  });
}

export function commandList(): Buffer {
  return encodeReply((writer) => {
    writer.arrayHeader(COMMANDS.length);
    for (const command of COMMANDS) writer.bulk(command.name);
  });
}

export function commandCount(): number {
  return COMMANDS.length;
}
