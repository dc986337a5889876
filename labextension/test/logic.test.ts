// Pure frontend decisions: routing, insertion index, stale/update targets, texts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  BoundedMap,
  ICellSummary,
  badgeText,
  controlsFor,
  findInsertIndex,
  findUpdateIndex,
  formatTokens,
  isForMe,
  mergeRlmMetadata,
  planStale,
  planSync,
  rememberClient,
  statusDetail,
  statusText
} from '../src/logic';
import { IRlmCellMetadata, IStatusMsg, ISyncCell, Role } from '../src/protocol';

function cell(id: string, rlm?: [string, number, Role, boolean?]): ICellSummary {
  if (rlm === undefined) {
    return { id, rlm: null };
  }
  const [session, iteration, role, stale] = rlm;
  return { id, rlm: stale === true ? { session, iteration, role, stale } : { session, iteration, role } };
}

const NOTEBOOK: ICellSummary[] = [
  cell('setup'),
  cell('start', ['s1', 0, 'start']),
  cell('r1', ['s1', 1, 'reasoning']),
  cell('step1', ['s1', 1, 'step']),
  cell('other')
];

const NO_CONTEXT = { executingCellId: null, activeIndex: -1 };

describe('isForMe', () => {
  it('acts on messages for this client or for anyone', () => {
    assert.equal(isForMe({}, 'me'), true);
    assert.equal(isForMe({ for_session: null }, 'me'), true);
    assert.equal(isForMe({ for_session: 'me' }, 'me'), true);
    assert.equal(isForMe({ for_session: 'other-tab' }, 'me'), false);
  });
});

describe('findInsertIndex', () => {
  const msg = (iteration: number, after: string | null = null) => ({
    session: 's1',
    iteration,
    after_cell_id: after
  });

  it('honours after_cell_id', () => {
    assert.equal(findInsertIndex(NOTEBOOK, msg(2, 'setup'), NO_CONTEXT), 1);
  });

  it('goes after the executing cell when after_cell_id is null', () => {
    const context = { executingCellId: 'step1', activeIndex: 0 };
    assert.equal(findInsertIndex(NOTEBOOK, msg(2), context), 4);
  });

  it('falls back to the previous iteration, then the start cell, then the active cell', () => {
    assert.equal(findInsertIndex(NOTEBOOK, msg(2, 'gone'), NO_CONTEXT), 4);
    // Iteration 1's cells already follow the start cell: a new iteration-1 cell goes after them.
    assert.equal(findInsertIndex(NOTEBOOK, msg(1), NO_CONTEXT), 4);
    const other = [cell('a'), cell('b'), cell('c')];
    assert.equal(findInsertIndex(other, msg(1), { executingCellId: null, activeIndex: 1 }), 2);
    assert.equal(findInsertIndex(other, msg(1), NO_CONTEXT), 3);
    assert.equal(findInsertIndex([], msg(1), NO_CONTEXT), 0);
  });

  it('keeps several inserts for one iteration in order', () => {
    const cells = [cell('start', ['s1', 0, 'start']), cell('x')];
    const context = { executingCellId: 'start', activeIndex: 0 };
    const first = findInsertIndex(cells, msg(1), context);
    assert.equal(first, 1);
    cells.splice(first, 0, cell('r1', ['s1', 1, 'reasoning']));
    const second = findInsertIndex(cells, msg(1), context);
    assert.equal(second, 2);
    cells.splice(second, 0, cell('step1', ['s1', 1, 'step']));
    assert.deepEqual(
      cells.map(c => c.id),
      ['start', 'r1', 'step1', 'x']
    );
  });

  it('does not skip stale cells of the same iteration', () => {
    const cells = [cell('step1', ['s1', 1, 'step']), cell('old2', ['s1', 2, 'step', true])];
    assert.equal(findInsertIndex(cells, msg(2, 'step1'), NO_CONTEXT), 1);
  });

  it('ignores stale cells of the previous iteration as anchors', () => {
    const cells = [
      cell('start', ['s1', 0, 'start']),
      cell('old1', ['s1', 1, 'step', true]),
      cell('new1', ['s1', 1, 'step'])
    ];
    assert.equal(findInsertIndex(cells, msg(2), NO_CONTEXT), 3);
    const onlyStale = cells.slice(0, 2);
    assert.equal(findInsertIndex(onlyStale, msg(2), NO_CONTEXT), 1);
  });
});

describe('planStale', () => {
  const cells = [
    ...NOTEBOOK,
    cell('step2', ['s1', 2, 'step']),
    cell('ans', ['s1', 3, 'answer']),
    cell('s2', ['s2', 5, 'step'])
  ];

  it('marks step and notes cells from the iteration on, never the start cell', () => {
    assert.deepEqual(planStale(cells, { session: 's1', from_iteration: 2, remove: false }), {
      mark: [5],
      remove: [6]
    });
    assert.deepEqual(planStale(cells, { session: 's1', from_iteration: 0, remove: false }), {
      mark: [2, 3, 5],
      remove: [6]
    });
    assert.deepEqual(planStale(cells, { session: 'nope', from_iteration: 0, remove: false }), {
      mark: [],
      remove: []
    });
  });

  it('removes a superseded answer, the re-run step\'s own included, never an earlier one', () => {
    // Step 3 gave the answer; re-running step 3 sends from_iteration 4.
    assert.deepEqual(planStale(cells, { session: 's1', from_iteration: 4, remove: false }), {
      mark: [],
      remove: [6]
    });
    // An answer at iteration 3 to an earlier question stays when step 5 is re-run.
    assert.deepEqual(planStale(cells, { session: 's1', from_iteration: 6, remove: false }), {
      mark: [],
      remove: []
    });
  });

  it('removes everything it applies to with remove', () => {
    assert.deepEqual(planStale(cells, { session: 's1', from_iteration: 2, remove: true }), {
      mark: [],
      remove: [5, 6]
    });
  });
});

function syncCell(id: string, iteration: number, role: Role = 'step'): ISyncCell {
  return {
    cell_id: id,
    cell_type: role === 'step' ? 'code' : 'markdown',
    source: `cell ${id}`,
    metadata: { rlm: { session: 's1', iteration, role } },
    collapsed: false,
    outputs: []
  };
}

describe('planSync', () => {
  const session = [syncCell('a', 1), syncCell('n2', 2, 'reasoning'), syncCell('b', 2), syncCell('ans', 2, 'answer')];
  const ids = (plan: ReturnType<typeof planSync>): [number, string][] =>
    plan.map(({ index, cell }) => [index, cell.cell_id]);

  it('re-creates every cell after the %rlm cell of a notebook reverted to its last save', () => {
    const reverted = [cell('setup'), cell('ctx'), cell('rlm'), cell('below')];
    assert.deepEqual(ids(planSync(reverted, { start_cell_id: 'rlm', cells: session })), [
      [3, 'a'],
      [4, 'n2'],
      [5, 'b'],
      [6, 'ans']
    ]);
  });

  it('fills in only the missing ones, each after the one before it', () => {
    const saved = [cell('setup'), cell('rlm'), cell('a', ['s1', 1, 'step']), cell('below')];
    assert.deepEqual(ids(planSync(saved, { start_cell_id: 'rlm', cells: session })), [
      [3, 'n2'],
      [4, 'b'],
      [5, 'ans']
    ]);
    const whole = [cell('rlm'), ...session.map(c => cell(c.cell_id))];
    assert.deepEqual(planSync(whole, { start_cell_id: 'rlm', cells: session }), []);
  });

  it('never inserts at the top when the %rlm cell is unknown', () => {
    const reverted = [cell('setup'), cell('ctx')];
    assert.deepEqual(ids(planSync(reverted, { start_cell_id: null, cells: session.slice(0, 2) })), [
      [2, 'a'],
      [3, 'n2']
    ]);
    // Without the %rlm cell but with some of the session's cells: before the first of them.
    const partial = [cell('setup'), cell('b'), cell('x')];
    assert.deepEqual(ids(planSync(partial, { start_cell_id: 'gone', cells: session })), [
      [1, 'a'],
      [2, 'n2'],
      [4, 'ans']
    ]);
  });
});

describe('findUpdateIndex', () => {
  it('finds the step cell by default, a role when given, or a cell id', () => {
    assert.equal(findUpdateIndex(NOTEBOOK, { session: 's1', iteration: 1 }), 3);
    assert.equal(findUpdateIndex(NOTEBOOK, { session: 's1', iteration: 1, role: 'reasoning' }), 2);
    assert.equal(findUpdateIndex(NOTEBOOK, { session: 's1', iteration: 1, cell_id: 'other' }), 4);
    assert.equal(findUpdateIndex(NOTEBOOK, { session: 's1', iteration: 9 }), -1);
  });

  it('merges metadata but keeps the identity fields', () => {
    const current: IRlmCellMetadata = { session: 's1', iteration: 1, role: 'step' };
    assert.deepEqual(mergeRlmMetadata(current, { subcalls: 3, session: 'evil', stale: false }), {
      session: 's1',
      iteration: 1,
      role: 'step',
      subcalls: 3,
      stale: false
    });
  });
});

describe('texts', () => {
  it('badges', () => {
    assert.equal(badgeText({ session: 's', iteration: 3, role: 'step' }), 'RLM · step 3');
    assert.equal(
      badgeText({ session: 's', iteration: 3, role: 'step', subcalls: 2 }),
      'RLM · step 3 · 2 sub-calls'
    );
    assert.equal(
      badgeText({ session: 's', iteration: 1, role: 'step', subcalls: 1 }),
      'RLM · step 1 · 1 sub-call'
    );
    assert.equal(
      badgeText({ session: 's', iteration: 5, role: 'step', subcalls: 0, guard: 'repeats step 2' }),
      'RLM · step 5 · 0 sub-calls · repeats step 2'
    );
    assert.equal(badgeText({ session: 's', iteration: 4, role: 'answer' }), 'RLM · answer');
    assert.equal(badgeText({ session: 's', iteration: 2, role: 'reasoning' }), 'RLM · reasoning 2');
  });

  it('status line and buttons', () => {
    const status: IStatusMsg = {
      type: 'status',
      session: 's1',
      session_state: 'running',
      iteration: 3,
      max_iterations: 20,
      tokens: 12345,
      cost: 0.0123,
      in_flight: 2,
      elapsed: 41.4,
      question: 'q'
    };
    assert.equal(statusText(status), 'RLM running · 3/20 · 12.3k tok · $0.0123 · 2 in flight · 41s');
    // What the kernel sends now: the snapshot's sub-calls and batch wave too.
    const batch: IStatusMsg = { ...status, root_tokens: 10000, subcalls: 64, in_flight: 40, wave: 64 };
    assert.equal(
      statusText(batch),
      'RLM running · 3/20 · 12.3k tok · $0.0123 · 64 sub-calls · 40 in flight · 24/64 answered · 41s'
    );
    assert.equal(
      statusDetail(batch),
      'running · iteration 3/20 · 12,345 tokens (root 10,000 · sub 2,345) · $0.0123 · 64 sub-calls · 40 in flight · 41.4 s'
    );
    assert.equal(statusDetail(status), 'running · iteration 3/20 · 12,345 tokens · $0.0123 · 2 in flight · 41.4 s');
    assert.equal(
      statusText({ ...status, session_state: 'done', cost: null, in_flight: 0, tokens: 999 }),
      'RLM done · 3/20 · 999 tok · 41s'
    );
    assert.deepEqual(controlsFor('running'), ['pause', 'stop']);
    assert.deepEqual(controlsFor('paused'), ['step', 'resume', 'stop']);
    assert.deepEqual(controlsFor('done'), []);
    assert.equal(formatTokens(2_500_000), '2.5M');
  });
});

describe('BoundedMap', () => {
  it('forgets the oldest entries past its limit', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3);
    map.set('c', 4);
    assert.equal(map.size, 2);
    assert.equal(map.get('b'), undefined);
    assert.equal(map.get('a'), 3);
    assert.equal(map.get('c'), 4);
  });
});

describe('rememberClient', () => {
  it('returns the client this tab had on the kernel before a reload', () => {
    const items = new Map<string, string>();
    const store = {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value)
    };
    assert.equal(rememberClient(store, 'k1', 'a.ipynb', 'c1'), null); // first attach
    assert.equal(rememberClient(store, 'k1', 'a.ipynb', 'c1'), null); // same connection again
    assert.equal(rememberClient(store, 'k1', 'a.ipynb', 'c2'), 'c1'); // reloaded
    assert.equal(rememberClient(store, 'k1', 'b.ipynb', 'c3'), null); // another notebook
    assert.equal(rememberClient(store, 'k2', 'a.ipynb', 'c4'), null); // another kernel
  });
});
