/**
 * Thin widgets: the toolbar status item and the per-cell decorations (left edge, badge, stale
 * marker). All decisions come from `logic.ts`.
 */

import { Cell } from '@jupyterlab/cells';
import { Widget } from '@lumino/widgets';

import { badgeText, controlsFor, statusDetail, statusText } from './logic';
import { ControlAction, IStatusMsg, readCellRlm } from './protocol';

export const CELL_CLASS = 'jp-RLM-cell';
export const BADGE_CLASS = 'jp-RLM-badge';
export const STALE_CLASS = 'jp-RLM-stale';
const ROLE_CLASS_PREFIX = 'jp-RLM-role-';
const ROLE_CLASSES = ['start', 'step', 'reasoning', 'answer'].map(r => ROLE_CLASS_PREFIX + r);

/** Sync one cell's classes and badge with its `metadata.rlm`. Idempotent. */
export function decorateCell(cell: Cell): void {
  const rlm = readCellRlm(cell.model.getMetadata('rlm'));
  const node = cell.node;
  let badge = node.querySelector(`:scope > .${BADGE_CLASS}`);
  if (rlm === null) {
    node.classList.remove(CELL_CLASS, STALE_CLASS, ...ROLE_CLASSES);
    badge?.remove();
    return;
  }
  node.classList.add(CELL_CLASS);
  for (const cls of ROLE_CLASSES) {
    node.classList.toggle(cls, cls === ROLE_CLASS_PREFIX + rlm.role);
  }
  const stale = rlm.stale === true;
  node.classList.toggle(STALE_CLASS, stale);
  if (badge === null) {
    badge = document.createElement('div');
    badge.className = BADGE_CLASS;
    node.appendChild(badge);
  }
  const text = badgeText(rlm) + (stale ? ' · stale' : '');
  if (badge.textContent !== text) {
    badge.textContent = text;
  }
  badge.setAttribute('title', `rlm session ${rlm.session}`);
}

const ACTION_LABELS: { readonly [A in ControlAction]: string } = {
  pause: 'Pause',
  step: 'Step',
  resume: 'Resume',
  stop: 'Stop'
};

/** Toolbar item: state, iteration i/N, tokens, cost, and Pause / Step / Resume / Stop. */
export class RlmStatusWidget extends Widget {
  private readonly _label: HTMLSpanElement;
  private readonly _buttons: HTMLSpanElement;
  private _status: IStatusMsg | null = null;

  constructor(private readonly _onControl: (action: ControlAction, session: string) => void) {
    super();
    this.addClass('jp-RLM-status');
    this.node.setAttribute('data-rlm-state', 'none');
    this._label = document.createElement('span');
    this._label.className = 'jp-RLM-status-label';
    this._buttons = document.createElement('span');
    this._buttons.className = 'jp-RLM-status-buttons';
    this.node.append(this._label, this._buttons);
    this.hide();
  }

  get status(): IStatusMsg | null {
    return this._status;
  }

  setStatus(status: IStatusMsg): void {
    this._status = status;
    this.node.setAttribute('data-rlm-state', status.session_state);
    this.node.title = `${status.question}\n${statusDetail(status)}`;
    this._label.textContent = statusText(status);
    this._buttons.replaceChildren(
      ...controlsFor(status.session_state).map(action => {
        const button = document.createElement('button');
        button.className = 'jp-RLM-status-button jp-Button jp-mod-minimal';
        button.dataset.action = action;
        button.textContent = ACTION_LABELS[action];
        button.addEventListener('click', () => this._onControl(action, status.session));
        return button;
      })
    );
    this.show();
  }

  /** The kernel went away (restart, death) with its sessions: say so, offer no buttons. */
  end(reason: string): void {
    if (this._status === null) {
      return;
    }
    this.node.setAttribute('data-rlm-state', 'ended');
    this._label.textContent = `RLM ended · ${reason}`;
    this._buttons.replaceChildren();
  }
}
