/**
 * Pure decisions of the frontend: which messages to act on, where an inserted cell goes, which
 * cells a `mark_stale` or `update_cell` touches, and the texts of badges and the status widget.
 * No JupyterLab imports: the widgets feed plain cell summaries in and apply the results.
 */

import {
  ControlAction,
  IInsertCellMsg,
  IMarkStaleMsg,
  IRlmCellMetadata,
  IStatusMsg,
  ISyncCell,
  ISyncMsg,
  IUpdateCellMsg,
  SessionState
} from './protocol';

/** What the pure functions need to know about one notebook cell. */
export interface ICellSummary {
  id: string;
  /** The cell's `metadata.rlm` when it is well formed, else null. */
  rlm: IRlmCellMetadata | null;
}

/** Where the message came from and what the notebook looks like around it. */
export interface IInsertContext {
  /** The cell whose execute_request is the parent of the comm message, if known. */
  executingCellId: string | null;
  /** The notebook's active cell index (-1 when none). */
  activeIndex: number;
}

/** Act on a kernel message only when it is for this connection (or for everyone). */
export function isForMe(
  message: { for_session?: string | null },
  clientId: string
): boolean {
  return (
    message.for_session === undefined ||
    message.for_session === null ||
    message.for_session === clientId
  );
}

function indexOfId(cells: readonly ICellSummary[], id: string | null | undefined): number {
  if (!id) {
    return -1;
  }
  return cells.findIndex(cell => cell.id === id);
}

function lastIndexWhere(
  cells: readonly ICellSummary[],
  predicate: (cell: ICellSummary) => boolean
): number {
  for (let i = cells.length - 1; i >= 0; i--) {
    if (predicate(cells[i])) {
      return i;
    }
  }
  return -1;
}

/**
 * The anchor cell an `insert_cell` goes after, in order of preference:
 * 1. `after_cell_id` when the notebook has it;
 * 2. the cell being executed (the comm message's parent execute_request);
 * 3. the last non-stale cell of the same session at iteration - 1 (step/answer before reasoning);
 * 4. the session's `%rlm` cell (role 'start');
 * 5. the active cell.
 * Returns -1 when nothing fits (then the cell is appended).
 */
export function findAnchorIndex(
  cells: readonly ICellSummary[],
  message: Pick<IInsertCellMsg, 'after_cell_id' | 'session' | 'iteration'>,
  context: IInsertContext
): number {
  const explicit = indexOfId(cells, message.after_cell_id);
  if (explicit >= 0) {
    return explicit;
  }
  const executing = indexOfId(cells, context.executingCellId);
  if (executing >= 0) {
    return executing;
  }
  const previous = lastIndexWhere(
    cells,
    cell =>
      cell.rlm !== null &&
      cell.rlm.session === message.session &&
      cell.rlm.iteration === message.iteration - 1 &&
      cell.rlm.role !== 'start' &&
      cell.rlm.stale !== true
  );
  if (previous >= 0) {
    return previous;
  }
  const start = lastIndexWhere(
    cells,
    cell => cell.rlm !== null && cell.rlm.session === message.session && cell.rlm.role === 'start'
  );
  if (start >= 0) {
    return start;
  }
  if (context.activeIndex >= 0 && context.activeIndex < cells.length) {
    return context.activeIndex;
  }
  return -1;
}

/**
 * The index at which to insert the new cell: after the anchor, and after any cells already
 * inserted for the same session and iteration right below it, so several inserts for one
 * iteration (reasoning, then step) keep their order.
 */
export function findInsertIndex(
  cells: readonly ICellSummary[],
  message: Pick<IInsertCellMsg, 'after_cell_id' | 'session' | 'iteration'>,
  context: IInsertContext
): number {
  const anchor = findAnchorIndex(cells, message, context);
  if (anchor < 0) {
    return cells.length;
  }
  let index = anchor + 1;
  while (index < cells.length) {
    const rlm = cells[index].rlm;
    if (
      rlm === null ||
      rlm.session !== message.session ||
      rlm.iteration !== message.iteration ||
      rlm.role === 'start' ||
      rlm.stale === true
    ) {
      break;
    }
    index++;
  }
  return index;
}

/** What a `mark_stale` does: which cells to mark stale and which to delete (ascending indices). */
export interface IStalePlan {
  mark: number[];
  remove: number[];
}

/**
 * The cells a `mark_stale` touches: the session's step and notes cells from `from_iteration` on
 * are marked (or removed when `remove`); its answer cells from `from_iteration - 1` on (the answer
 * the re-run step gave, or a later one) are removed, since a stale answer left as the notebook's
 * last cell reads as its conclusion.
 */
export function planStale(
  cells: readonly ICellSummary[],
  message: Pick<IMarkStaleMsg, 'session' | 'from_iteration' | 'remove'>
): IStalePlan {
  const plan: IStalePlan = { mark: [], remove: [] };
  cells.forEach((cell, index) => {
    const rlm = cell.rlm;
    if (rlm === null || rlm.session !== message.session) {
      return;
    }
    if (rlm.role === 'answer' && rlm.iteration >= message.from_iteration - 1) {
      plan.remove.push(index);
    } else if (
      (rlm.role === 'step' || rlm.role === 'reasoning') &&
      rlm.iteration >= message.from_iteration
    ) {
      (message.remove ? plan.remove : plan.mark).push(index);
    }
  });
  return plan;
}

/** One insert of a `sync`: put `cell` at `index` (indices as they are when it is applied). */
export interface ISyncInsert {
  index: number;
  cell: ISyncCell;
}

/**
 * The inserts that bring a notebook up to a `sync`, in the order to apply them: each missing cell
 * goes right after the one before it in the session's order; the first after the `%rlm` cell (or,
 * without it, just before the first of the session's cells the notebook has), and with none of
 * them there, at the end. Never at the top of a notebook that has other cells above.
 */
export function planSync(
  cells: readonly ICellSummary[],
  message: Pick<ISyncMsg, 'start_cell_id' | 'cells'>
): ISyncInsert[] {
  const ids: string[] = cells.map(cell => cell.id);
  const wanted = new Set(message.cells.map(cell => cell.cell_id));
  let anchor = indexOfId(cells, message.start_cell_id);
  if (anchor < 0) {
    const first = ids.findIndex(id => wanted.has(id));
    anchor = first >= 0 ? first - 1 : ids.length - 1;
  }
  const inserts: ISyncInsert[] = [];
  for (const cell of message.cells) {
    const present = ids.indexOf(cell.cell_id);
    if (present >= 0) {
      anchor = present;
      continue;
    }
    const index = anchor + 1;
    ids.splice(index, 0, cell.cell_id);
    inserts.push({ index, cell });
    anchor = index;
  }
  return inserts;
}

/** Index of the cell an `update_cell` addresses (by cell_id, else session/iteration/role), or -1. */
export function findUpdateIndex(
  cells: readonly ICellSummary[],
  message: Pick<IUpdateCellMsg, 'session' | 'iteration' | 'role' | 'cell_id'>
): number {
  if (message.cell_id) {
    return indexOfId(cells, message.cell_id);
  }
  const role = message.role ?? 'step';
  return lastIndexWhere(
    cells,
    cell =>
      cell.rlm !== null &&
      cell.rlm.session === message.session &&
      cell.rlm.iteration === message.iteration &&
      cell.rlm.role === role &&
      cell.rlm.stale !== true
  );
}

/** New `metadata.rlm` after an `update_cell`: the update wins, identity fields are kept. */
export function mergeRlmMetadata(
  current: IRlmCellMetadata,
  update: { [key: string]: unknown }
): IRlmCellMetadata {
  return {
    ...current,
    ...update,
    session: current.session,
    iteration: current.iteration,
    role: current.role
  };
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The badge of an RLM cell, e.g. "RLM · step 3 · 2 sub-calls". */
export function badgeText(rlm: IRlmCellMetadata): string {
  switch (rlm.role) {
    case 'step': {
      const parts = ['RLM', `step ${rlm.iteration}`];
      if (typeof rlm.subcalls === 'number' && Number.isInteger(rlm.subcalls)) {
        parts.push(plural(rlm.subcalls, 'sub-call'));
      }
      if (typeof rlm.guard === 'string' && rlm.guard) {
        parts.push(rlm.guard);
      }
      return parts.join(' · ');
    }
    case 'reasoning':
      return `RLM · reasoning ${rlm.iteration}`;
    case 'answer':
      return 'RLM · answer';
    case 'start':
      return 'RLM · session';
  }
}

/** The buttons the status widget offers in each state. */
export function controlsFor(state: SessionState): ControlAction[] {
  switch (state) {
    case 'running':
      return ['pause', 'stop'];
    case 'paused':
      return ['step', 'resume', 'stop'];
    case 'idle':
      return ['step', 'resume'];
    case 'done':
    case 'failed':
      return [];
  }
}

/** 12345 -> "12.3k", 2500000 -> "2.5M". */
export function formatTokens(tokens: number): string {
  if (tokens >= 1_000_000) {
    return `${(tokens / 1_000_000).toFixed(1)}M`;
  }
  if (tokens >= 1_000) {
    return `${(tokens / 1_000).toFixed(1)}k`;
  }
  return String(tokens);
}

/**
 * One line for the toolbar, e.g. "RLM running · 3/20 · 12.3k tok · $0.0123 · 40 sub-calls ·
 * 2 in flight · 14/16 answered · 41s": the session's snapshot as the kernel sent it.
 */
export function statusText(status: IStatusMsg): string {
  const parts = [
    `RLM ${status.session_state}`,
    `${status.iteration}/${status.max_iterations}`,
    `${formatTokens(status.tokens)} tok`
  ];
  if (status.cost !== null) {
    parts.push(`$${status.cost.toFixed(4)}`);
  }
  if (status.subcalls !== undefined) {
    parts.push(`${status.subcalls} sub-calls`);
  }
  if (status.in_flight > 0) {
    parts.push(`${status.in_flight} in flight`);
  }
  const wave = status.wave ?? 0;
  if (wave > 1) {
    parts.push(`${Math.max(wave - status.in_flight, 0)}/${wave} answered`);
  }
  parts.push(`${Math.round(status.elapsed)}s`);
  return parts.join(' · ');
}

const exact = (n: number): string => n.toLocaleString('en-US');

/**
 * The status in full, exact numbers, for the toolbar's tooltip: the same line as the kernel's
 * `_snapshot.describe` (the CLI line and the inline status bar), which the protocol fixture's
 * `status_lines` hold equal.
 */
export function statusDetail(status: IStatusMsg): string {
  const parts = [status.session_state, `iteration ${status.iteration}/${status.max_iterations}`];
  if (status.root_tokens !== undefined) {
    const sub = status.tokens - status.root_tokens;
    parts.push(
      `${exact(status.tokens)} tokens (root ${exact(status.root_tokens)} · sub ${exact(sub)})`
    );
  } else {
    parts.push(`${exact(status.tokens)} tokens`);
  }
  if (status.cost !== null) {
    parts.push(`$${status.cost.toFixed(4)}`);
  }
  if (status.subcalls !== undefined) {
    parts.push(`${exact(status.subcalls)} sub-calls`);
  }
  if (status.in_flight > 0) {
    parts.push(`${exact(status.in_flight)} in flight`);
  }
  parts.push(`${status.elapsed.toFixed(1)} s`);
  return parts.join(' · ');
}

/** The part of the Web Storage API that `rememberClient` needs (sessionStorage in the browser). */
export interface IClientStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Remember `clientId` as this tab's client on `kernelId` for `path`, and return the client the tab
 * had there before (after a page reload), or null on a first attach. Backed by sessionStorage, which
 * survives a reload but belongs to one tab, so no other tab ever claims another's client.
 */
export function rememberClient(
  store: IClientStore,
  kernelId: string,
  path: string,
  clientId: string
): string | null {
  const key = `rlm_kernel:client:${kernelId}:${path}`;
  const previous = store.getItem(key);
  store.setItem(key, clientId);
  return previous !== null && previous !== clientId ? previous : null;
}

/**
 * A bounded map from execute_request msg_id to the cell id it ran, so the parent of a comm
 * message can be traced back to the cell that sent it.
 */
export class BoundedMap<K, V> {
  private readonly _map = new Map<K, V>();

  constructor(private readonly _limit: number) {}

  set(key: K, value: V): void {
    this._map.delete(key);
    this._map.set(key, value);
    while (this._map.size > this._limit) {
      const oldest = this._map.keys().next();
      if (oldest.done === true) {
        break;
      }
      this._map.delete(oldest.value);
    }
  }

  get(key: K): V | undefined {
    return this._map.get(key);
  }

  get size(): number {
    return this._map.size;
  }
}
