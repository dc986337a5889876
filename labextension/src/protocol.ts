/**
 * The rlm_kernel comm protocol, version 1: the frontend side, defined once.
 *
 * The kernel side is `rlm_kernel/_notebook/_protocol.py`; both are checked against the shared
 * fixture `tests/fixtures/protocol_v1.json`. Keep the field tables and error wording of the two
 * files in step. This module is pure (no JupyterLab imports) so the node test runner can load it.
 */

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'rlm_kernel';

export type Role = 'start' | 'step' | 'reasoning' | 'answer';
export type CellType = 'code' | 'markdown';
export type SessionState = 'idle' | 'running' | 'paused' | 'done' | 'failed';
export type ControlAction = 'pause' | 'resume' | 'step' | 'stop';
export type FrontendName = 'jupyterlab' | 'notebook' | 'nbclient';

export const ROLES: readonly Role[] = ['start', 'step', 'reasoning', 'answer'];
export const CELL_TYPES: readonly CellType[] = ['code', 'markdown'];
export const SESSION_STATES: readonly SessionState[] = [
  'idle',
  'running',
  'paused',
  'done',
  'failed'
];
export const CONTROL_ACTIONS: readonly ControlAction[] = ['pause', 'resume', 'step', 'stop'];
export const FRONTENDS: readonly FrontendName[] = ['jupyterlab', 'notebook', 'nbclient'];

/** `metadata.rlm` of a cell that belongs to an RLM session. */
export interface IRlmCellMetadata {
  session: string;
  iteration: number;
  role: Role;
  /** Number of sub-calls the iteration made (set by the kernel, often via `update_cell`). */
  subcalls?: number;
  /** A guard stepped in at this step, e.g. "repeats step 2" (set by the kernel via `update_cell`). */
  guard?: string;
  /** Set by the frontend on `mark_stale` (remove: false). */
  stale?: boolean;
  [key: string]: unknown;
}

// ---- kernel -> frontend ------------------------------------------------------------------

/** Kernel-opened comm (comm_open data) or comm_msg: asks the frontend for a `hello`. */
export interface IAnnounceMsg {
  type: 'announce';
  protocol: number;
}

export interface IInsertCellMsg {
  type: 'insert_cell';
  request_id: string;
  /** The frontend client session (kernel.clientId) the message is for; absent/null: any. */
  for_session?: string | null;
  session: string;
  iteration: number;
  /** null: right after the cell whose execution sent the message. */
  after_cell_id: string | null;
  /** Optional id for the new cell, so later messages can address it. */
  cell_id?: string | null;
  cell_type: CellType;
  source: string;
  metadata: { rlm: IRlmCellMetadata; [key: string]: unknown };
  run: boolean;
  /** For the reasoning markdown cell: insert with its source hidden. */
  collapsed: boolean;
}

export interface IMarkStaleMsg {
  type: 'mark_stale';
  for_session?: string | null;
  session: string;
  from_iteration: number;
  remove: boolean;
}

export interface IStatusMsg {
  type: 'status';
  for_session?: string | null;
  session: string;
  session_state: SessionState;
  iteration: number;
  max_iterations: number;
  tokens: number;
  cost: number | null;
  in_flight: number;
  elapsed: number;
  question: string;
  /** Added after protocol 1's first release (a kernel of that release sends none). */
  root_tokens?: number;
  subcalls?: number;
  wave?: number;
}

export interface IUpdateCellMsg {
  type: 'update_cell';
  for_session?: string | null;
  session: string;
  iteration: number;
  /** Which cell of the iteration (default 'step'). */
  role?: Role;
  /** Address the cell directly instead of by session/iteration/role. */
  cell_id?: string | null;
  /** Merged into the cell's `metadata.rlm`. */
  metadata: { [key: string]: unknown };
}

/** One cell of a session as the kernel's record has it (`sync`). */
export interface ISyncCell {
  cell_id: string;
  cell_type: CellType;
  source: string;
  metadata: { rlm: IRlmCellMetadata; [key: string]: unknown };
  collapsed: boolean;
  /** nbformat outputs: what the step printed, from its record (none for a step not run yet). */
  outputs: { [key: string]: unknown }[];
}

/**
 * Sent to a page that (re)connects: the session's live cells in notebook order. The page inserts
 * those it lacks after the one before them (the first after the `%rlm` cell; with neither there,
 * at the end, never at the top), fills in the outputs of step cells that have none, and runs
 * nothing (a waiting step comes after as an `insert_cell` with `run`).
 */
export interface ISyncMsg {
  type: 'sync';
  for_session?: string | null;
  session: string;
  /** The `%rlm` cell's id; absent/null: not known. */
  start_cell_id?: string | null;
  cells: ISyncCell[];
}

// ---- frontend -> kernel ------------------------------------------------------------------

export interface IHelloMsg {
  type: 'hello';
  protocol: number;
  frontend: FrontendName;
  version: string;
  /** kernel.clientId: the parent_header.session of this frontend's requests. */
  session: string;
  /**
   * The clientId this browser tab had on the same kernel before a page reload: the kernel re-sends
   * what it sent the old client that the old page never applied, and addresses that client's later
   * messages here.
   */
  replaces?: string | null;
}

export interface ICellInsertedMsg {
  type: 'cell_inserted';
  request_id: string;
  cell_id: string;
  index: number;
}

export interface ICellExecutedMsg {
  type: 'cell_executed';
  request_id: string;
  cell_id: string;
  ok: boolean;
}

export interface IControlMsg {
  type: 'control';
  action: ControlAction;
  session: string;
}

export type KernelMessage =
  | IAnnounceMsg
  | IInsertCellMsg
  | IMarkStaleMsg
  | IStatusMsg
  | IUpdateCellMsg
  | ISyncMsg;
export type FrontendMessage = IHelloMsg | ICellInsertedMsg | ICellExecutedMsg | IControlMsg;
export type Message = KernelMessage | FrontendMessage;
export type MessageType = Message['type'];

// ---- validation --------------------------------------------------------------------------

/** Raised by `validate` for anything that is not a well-formed protocol-1 message. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

type Kind =
  | 'string'
  | 'string|null'
  | 'int'
  | 'number'
  | 'number|null'
  | 'bool'
  | 'object'
  | 'cell_metadata'
  | 'array'
  | 'sync_cells'
  | readonly string[];

interface IField {
  name: string;
  kind: Kind;
  required: boolean;
}

const req = (name: string, kind: Kind): IField => ({ name, kind, required: true });
const opt = (name: string, kind: Kind): IField => ({ name, kind, required: false });

/** Field table: the same as `_FIELDS` in `_protocol.py`. */
const FIELDS: { readonly [T in MessageType]: readonly IField[] } = {
  announce: [req('protocol', 'int')],
  insert_cell: [
    req('request_id', 'string'),
    opt('for_session', 'string|null'),
    req('session', 'string'),
    req('iteration', 'int'),
    req('after_cell_id', 'string|null'),
    opt('cell_id', 'string|null'),
    req('cell_type', CELL_TYPES),
    req('source', 'string'),
    req('metadata', 'cell_metadata'),
    req('run', 'bool'),
    req('collapsed', 'bool')
  ],
  mark_stale: [
    opt('for_session', 'string|null'),
    req('session', 'string'),
    req('from_iteration', 'int'),
    req('remove', 'bool')
  ],
  status: [
    opt('for_session', 'string|null'),
    req('session', 'string'),
    req('session_state', SESSION_STATES),
    req('iteration', 'int'),
    req('max_iterations', 'int'),
    req('tokens', 'int'),
    req('cost', 'number|null'),
    req('in_flight', 'int'),
    req('elapsed', 'number'),
    req('question', 'string'),
    opt('root_tokens', 'int'),
    opt('subcalls', 'int'),
    opt('wave', 'int')
  ],
  update_cell: [
    opt('for_session', 'string|null'),
    req('session', 'string'),
    req('iteration', 'int'),
    opt('role', ROLES),
    opt('cell_id', 'string|null'),
    req('metadata', 'object')
  ],
  sync: [
    opt('for_session', 'string|null'),
    req('session', 'string'),
    opt('start_cell_id', 'string|null'),
    req('cells', 'sync_cells')
  ],
  hello: [
    req('protocol', 'int'),
    req('frontend', FRONTENDS),
    req('version', 'string'),
    req('session', 'string'),
    opt('replaces', 'string|null')
  ],
  cell_inserted: [
    req('request_id', 'string'),
    req('cell_id', 'string'),
    req('index', 'int')
  ],
  cell_executed: [req('request_id', 'string'), req('cell_id', 'string'), req('ok', 'bool')],
  control: [req('action', CONTROL_ACTIONS), req('session', 'string')]
};

export const KERNEL_MESSAGE_TYPES: readonly MessageType[] = [
  'announce',
  'insert_cell',
  'mark_stale',
  'status',
  'update_cell',
  'sync'
];
export const FRONTEND_MESSAGE_TYPES: readonly MessageType[] = [
  'hello',
  'cell_inserted',
  'cell_executed',
  'control'
];

export function isPlainObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isMessageType(value: unknown): value is MessageType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(FIELDS, value);
}

function describe(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'array';
  }
  return typeof value;
}

function kindName(kind: Kind): string {
  if (typeof kind === 'string') {
    return {
      string: 'a string',
      'string|null': 'a string or null',
      int: 'an integer',
      number: 'a number',
      'number|null': 'a number or null',
      bool: 'a boolean',
      object: 'an object',
      cell_metadata: 'an object with an "rlm" object',
      array: 'an array',
      sync_cells: 'an array of cells'
    }[kind];
  }
  return 'one of ' + kind.map(k => `'${k}'`).join(', ');
}

function checkKind(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'string|null':
      return value === null || typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'number|null':
      return value === null || (typeof value === 'number' && Number.isFinite(value));
    case 'bool':
      return typeof value === 'boolean';
    case 'object':
    case 'cell_metadata':
      return isPlainObject(value);
    case 'array':
    case 'sync_cells':
      return Array.isArray(value);
    default:
      return typeof value === 'string' && kind.includes(value);
  }
}

function fail(type: string, text: string): never {
  throw new ProtocolError(`rlm_kernel protocol ${PROTOCOL_VERSION}: '${type}' message: ${text}`);
}

/** The fields `metadata.rlm` of an inserted cell must have. */
const CELL_RLM_FIELDS: readonly IField[] = [
  req('session', 'string'),
  req('iteration', 'int'),
  req('role', ROLES),
  opt('subcalls', 'int'),
  opt('guard', 'string')
];

/** The fields of each cell of a `sync`. */
const SYNC_CELL_FIELDS: readonly IField[] = [
  req('cell_id', 'string'),
  req('cell_type', CELL_TYPES),
  req('source', 'string'),
  req('metadata', 'cell_metadata'),
  req('collapsed', 'bool'),
  req('outputs', 'array')
];

function checkFields(
  type: string,
  data: { [key: string]: unknown },
  fields: readonly IField[],
  prefix: string
): void {
  for (const field of fields) {
    const path = prefix + field.name;
    if (!(field.name in data)) {
      if (field.required) {
        fail(type, `field '${path}' is missing`);
      }
      continue;
    }
    const value = data[field.name];
    if (!checkKind(value, field.kind)) {
      fail(type, `field '${path}' must be ${kindName(field.kind)}, got ${describe(value)}`);
    }
    if (field.kind === 'cell_metadata') {
      const rlm = (value as { [key: string]: unknown }).rlm;
      if (!isPlainObject(rlm)) {
        fail(type, `field '${path}.rlm' must be an object, got ${describe(rlm)}`);
      }
      checkFields(type, rlm, CELL_RLM_FIELDS, `${path}.rlm.`);
    }
    if (field.kind === 'sync_cells') {
      (value as unknown[]).forEach((cell, index) => {
        if (!isPlainObject(cell)) {
          fail(type, `field '${path}[${index}]' must be an object, got ${describe(cell)}`);
        }
        checkFields(type, cell, SYNC_CELL_FIELDS, `${path}[${index}].`);
      });
    }
  }
}

/**
 * Check that `data` is a protocol-1 message and return it typed.
 * Extra fields are allowed (forward compatibility); missing or mistyped ones are not.
 * @throws ProtocolError naming the message type and the offending field.
 */
export function validate(data: unknown): Message {
  if (!isPlainObject(data)) {
    throw new ProtocolError(
      `rlm_kernel protocol ${PROTOCOL_VERSION}: a message must be an object, got ${describe(data)}`
    );
  }
  const type = data.type;
  if (!isMessageType(type)) {
    throw new ProtocolError(
      `rlm_kernel protocol ${PROTOCOL_VERSION}: unknown message type ${JSON.stringify(type ?? null)} ` +
        `(field 'type'; known: ${Object.keys(FIELDS).join(', ')})`
    );
  }
  checkFields(type, data, FIELDS[type], '');
  return data as unknown as Message;
}

/** `validate` that returns null instead of throwing. */
export function tryValidate(data: unknown): Message | null {
  try {
    return validate(data);
  } catch (error) {
    if (error instanceof ProtocolError) {
      return null;
    }
    throw error;
  }
}

export function isKernelMessage(message: Message): message is KernelMessage {
  return KERNEL_MESSAGE_TYPES.includes(message.type);
}

export function isInsertCell(message: Message): message is IInsertCellMsg {
  return message.type === 'insert_cell';
}

export function isMarkStale(message: Message): message is IMarkStaleMsg {
  return message.type === 'mark_stale';
}

export function isStatus(message: Message): message is IStatusMsg {
  return message.type === 'status';
}

export function isUpdateCell(message: Message): message is IUpdateCellMsg {
  return message.type === 'update_cell';
}

export function isSync(message: Message): message is ISyncMsg {
  return message.type === 'sync';
}

export function isAnnounce(message: Message): message is IAnnounceMsg {
  return message.type === 'announce';
}

/** Reads `metadata.rlm` of a cell if it is well formed, else null. */
export function readCellRlm(value: unknown): IRlmCellMetadata | null {
  if (!isPlainObject(value)) {
    return null;
  }
  const { session, iteration, role } = value;
  if (
    typeof session !== 'string' ||
    typeof iteration !== 'number' ||
    !Number.isInteger(iteration) ||
    typeof role !== 'string' ||
    !(ROLES as readonly string[]).includes(role)
  ) {
    return null;
  }
  return value as IRlmCellMetadata;
}
