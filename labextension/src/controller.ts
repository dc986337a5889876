/**
 * One controller per notebook panel: attaches to the panel's kernel connection (and to every
 * later one: kernel change, restart, page reload), tags every execute_request with
 * `metadata.rlm_frontend`, keeps a comm on target `rlm_kernel`, and applies kernel messages to
 * the notebook.
 *
 * Rule that must not be broken: `comm.onMsg` never awaits a cell run. JupyterLab delivers a
 * kernel connection's messages one at a time and awaits the handler, so awaiting the run would
 * hold back that run's own replies (deadlock). Runs are fire and forget.
 */

import { Cell, ICellModel, ICodeCellModel, MarkdownCell } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

import {
  BoundedMap,
  ICellSummary,
  findInsertIndex,
  findUpdateIndex,
  isForMe,
  mergeRlmMetadata,
  planStale,
  planSync,
  rememberClient
} from './logic';
import {
  COMM_TARGET,
  ControlAction,
  FrontendMessage,
  FrontendName,
  IInsertCellMsg,
  IMarkStaleMsg,
  IStatusMsg,
  ISyncCell,
  ISyncMsg,
  IUpdateCellMsg,
  KernelMessage as RlmKernelMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  isKernelMessage,
  readCellRlm,
  validate
} from './protocol';
import { EXTENSION_VERSION } from './version';
import { RlmStatusWidget, decorateCell } from './widgets';

const LOG = '[rlm_kernel]';

/** Kernel connections already wrapped and given a comm target (one per connection). */
const attachedKernels = new WeakSet<Kernel.IKernelConnection>();

type ExecuteContent = KernelMessage.IExecuteRequestMsg['content'];
/** nbformat outputs, as a code cell's output area takes them. */
type Outputs = Parameters<ICodeCellModel['outputs']['fromJSON']>[0];

export class NotebookController {
  /** execute_request msg_id -> cell id, to find the cell whose run sent a comm message. */
  private readonly _executions = new BoundedMap<string, string>(500);
  /** Open comms of the current kernel connection, newest last. */
  private _comms: Kernel.IComm[] = [];
  private _kernel: Kernel.IKernelConnection | null = null;
  /** The clientId this tab had on the same kernel before a page reload (sent in `hello`). */
  private _replaces: string | null = null;
  private _decorateScheduled = false;
  private _disposed = false;
  readonly statusWidget: RlmStatusWidget;

  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _frontend: FrontendName
  ) {
    this.statusWidget = new RlmStatusWidget((action, session) => this.sendControl(action, session));
    _panel.toolbar.insertItem(10, 'rlm-status', this.statusWidget);

    const context = _panel.sessionContext;
    context.kernelChanged.connect((_, change) => this._attach(change.newValue), this);
    void context.ready.then(() => this._attach(context.session?.kernel ?? null));

    const notebook = _panel.content;
    notebook.modelContentChanged.connect(() => this.scheduleDecorate(), this);
    _panel.disposed.connect(() => {
      this._disposed = true;
    });
    this.scheduleDecorate();
  }

  // ---- attach ------------------------------------------------------------------------------

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (this._disposed || kernel === null) {
      return;
    }
    if (kernel !== this._kernel) {
      this._kernel = kernel;
      this._comms = [];
      this._replaces = previousClient(kernel, this._panel.context.path);
    }
    if (attachedKernels.has(kernel)) {
      return;
    }
    attachedKernels.add(kernel);
    this._wrapRequestExecute(kernel);
    kernel.registerCommTarget(COMM_TARGET, (comm, openMsg) => {
      // Kernel-initiated comm (the `announce`): adopt it and say hello on it.
      this._adopt(kernel, comm);
      const data: unknown = openMsg.content.data;
      this._handle(kernel, comm, data, openMsg.parent_header);
    });
    let restarting = false;
    kernel.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
        if (!restarting && kernel === this._kernel) {
          // The kernel's sessions died with it: the toolbar must not claim one still runs.
          this.statusWidget.end(status === 'dead' ? 'kernel died' : 'kernel restarted');
        }
        restarting = true;
        if (kernel === this._kernel) {
          this._comms = [];
        }
      } else if (restarting && status === 'idle') {
        restarting = false;
        this._openOwnComm(kernel);
      }
    });
    this._openOwnComm(kernel);
    console.log(`${LOG} attached to kernel ${kernel.name} (client ${kernel.clientId})`);
  }

  /** Tag every execute_request from this notebook (trap: Run All races a hello). */
  private _wrapRequestExecute(kernel: Kernel.IKernelConnection): void {
    const original = kernel.requestExecute.bind(kernel);
    kernel.requestExecute = (
      content: ExecuteContent,
      disposeOnDone?: boolean,
      metadata?: JSONObject
    ) => {
      const tagged: JSONObject = {
        ...(metadata ?? {}),
        rlm_frontend: { version: PROTOCOL_VERSION, session: kernel.clientId }
      };
      const future = original(content, disposeOnDone, tagged);
      const cellId = tagged.cellId;
      if (typeof cellId === 'string') {
        this._executions.set(future.msg.header.msg_id, cellId);
      }
      return future;
    };
  }

  /** Open our own comm (trap: after a reload the kernel's old comm is stale). */
  private _openOwnComm(kernel: Kernel.IKernelConnection): void {
    if (kernel.isDisposed) {
      return;
    }
    try {
      const comm = kernel.createComm(COMM_TARGET);
      this._adopt(kernel, comm);
      comm.open(this._hello(kernel) as unknown as JSONObject);
    } catch (error) {
      console.warn(`${LOG} could not open a comm`, error);
    }
  }

  private _adopt(kernel: Kernel.IKernelConnection, comm: Kernel.IComm): void {
    if (kernel === this._kernel) {
      this._comms = this._comms.filter(c => !c.isDisposed && c.commId !== comm.commId);
      this._comms.push(comm);
    }
    // Never async: awaiting anything that needs kernel replies here would deadlock (trap 2).
    comm.onMsg = msg => {
      this._handle(kernel, comm, msg.content.data, msg.parent_header);
    };
    comm.onClose = () => {
      this._comms = this._comms.filter(c => c !== comm);
    };
  }

  private _hello(kernel: Kernel.IKernelConnection): FrontendMessage {
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      frontend: this._frontend,
      version: EXTENSION_VERSION,
      session: kernel.clientId,
      ...(this._replaces !== null && kernel === this._kernel ? { replaces: this._replaces } : {})
    };
  }

  private _send(comm: Kernel.IComm, message: FrontendMessage): void {
    if (comm.isDisposed) {
      return;
    }
    try {
      comm.send(message as unknown as JSONObject);
    } catch (error) {
      console.warn(`${LOG} could not send ${message.type}`, error);
    }
  }

  /** Send a `control` on the newest open comm (toolbar buttons). */
  sendControl(action: ControlAction, session: string): void {
    const comm = [...this._comms].reverse().find(c => !c.isDisposed);
    if (comm === undefined) {
      console.warn(`${LOG} no open comm to send '${action}' on`);
      return;
    }
    this._send(comm, { type: 'control', action, session });
  }

  // ---- kernel -> frontend ------------------------------------------------------------------

  private _handle(
    kernel: Kernel.IKernelConnection,
    comm: Kernel.IComm,
    data: unknown,
    parentHeader: unknown
  ): void {
    if (data === undefined || data === null) {
      return;
    }
    let message: RlmKernelMessage;
    try {
      const validated = validate(data);
      if (!isKernelMessage(validated)) {
        console.warn(`${LOG} ignoring a frontend message sent to the frontend: ${validated.type}`);
        return;
      }
      message = validated;
    } catch (error) {
      if (error instanceof ProtocolError) {
        console.warn(`${LOG} ${error.message}`);
        return;
      }
      throw error;
    }
    if (message.type === 'announce') {
      this._send(comm, this._hello(kernel));
      return;
    }
    if (!isForMe(message, kernel.clientId)) {
      return;
    }
    try {
      switch (message.type) {
        case 'insert_cell':
          this._insertCell(comm, message, parentMsgId(parentHeader));
          break;
        case 'mark_stale':
          this._markStale(message);
          break;
        case 'update_cell':
          this._updateCell(message);
          break;
        case 'status':
          this._status(message);
          break;
        case 'sync':
          this._sync(message);
          break;
      }
    } catch (error) {
      console.error(`${LOG} failed to apply '${message.type}'`, error);
    }
  }

  private _summaries(): ICellSummary[] {
    const model = this._panel.content.model;
    if (model === null) {
      return [];
    }
    const result: ICellSummary[] = [];
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      result.push({ id: cell.id, rlm: readCellRlm(cell.getMetadata('rlm')) });
    }
    return result;
  }

  private _insertCell(comm: Kernel.IComm, message: IInsertCellMsg, parentId: string | null): void {
    const notebook = this._panel.content;
    const model = notebook.model;
    if (model === null) {
      console.warn(`${LOG} insert_cell: the notebook has no model`);
      return;
    }
    const cells = this._summaries();
    const existing = message.cell_id ? cells.findIndex(cell => cell.id === message.cell_id) : -1;
    if (existing >= 0) {
      // A re-delivery (after a page reload the kernel re-sends what the old page never applied):
      // the cell is here already, so only run it if asked.
      this._send(comm, {
        type: 'cell_inserted',
        request_id: message.request_id,
        cell_id: model.cells.get(existing).id,
        index: existing
      });
      this._runInserted(comm, message, model.cells.get(existing));
      return;
    }
    const index = findInsertIndex(cells, message, {
      executingCellId: parentId === null ? null : (this._executions.get(parentId) ?? null),
      activeIndex: notebook.activeCellIndex
    });
    const metadata: { [key: string]: unknown } = { ...message.metadata };
    if (message.collapsed) {
      const jupyter = metadata.jupyter;
      metadata.jupyter = {
        ...(typeof jupyter === 'object' && jupyter !== null ? jupyter : {}),
        source_hidden: true
      };
    }
    model.sharedModel.insertCell(index, {
      ...(message.cell_id ? { id: message.cell_id } : {}),
      cell_type: message.cell_type,
      source: message.source,
      metadata: metadata as JSONObject
    });
    const cellModel = model.cells.get(index);
    this._send(comm, {
      type: 'cell_inserted',
      request_id: message.request_id,
      cell_id: cellModel.id,
      index
    });
    this.scheduleDecorate();
    const widget = notebook.widgets.find(w => w.model === cellModel);
    if (widget !== undefined && message.collapsed) {
      widget.inputHidden = true;
      widget.saveCollapseState();
    }
    this._runInserted(comm, message, cellModel);
  }

  /** Run (code) or render (markdown) an inserted cell when the message asks for it. */
  private _runInserted(comm: Kernel.IComm, message: IInsertCellMsg, cellModel: ICellModel): void {
    const notebook = this._panel.content;
    const widget: Cell | undefined = notebook.widgets.find(w => w.model === cellModel);
    if (widget === undefined) {
      console.warn(`${LOG} insert_cell: no widget for the cell ${cellModel.id}`);
      return;
    }
    if (!message.run) {
      return;
    }
    if (widget instanceof MarkdownCell) {
      // "Running" markdown is rendering it; the cell executor would also un-collapse it.
      widget.rendered = true;
      this._send(comm, {
        type: 'cell_executed',
        request_id: message.request_id,
        cell_id: cellModel.id,
        ok: true
      });
      return;
    }
    // Fire and forget: never await a run inside the comm handler (trap 2).
    void NotebookActions.runCells(notebook, [widget], this._panel.sessionContext)
      .then(
        ok => ok,
        () => false
      )
      .then(ok =>
        this._send(comm, {
          type: 'cell_executed',
          request_id: message.request_id,
          cell_id: cellModel.id,
          ok
        })
      );
  }

  private _markStale(message: IMarkStaleMsg): void {
    const model = this._panel.content.model;
    if (model === null) {
      return;
    }
    const plan = planStale(this._summaries(), message);
    for (const index of plan.mark) {
      const cell = model.cells.get(index);
      const rlm = readCellRlm(cell.getMetadata('rlm'));
      if (rlm !== null && rlm.stale !== true) {
        cell.setMetadata('rlm', { ...rlm, stale: true });
      }
    }
    for (const index of [...plan.remove].reverse()) {
      model.sharedModel.deleteCell(index);
    }
    this.scheduleDecorate();
  }

  private _updateCell(message: IUpdateCellMsg): void {
    const model = this._panel.content.model;
    if (model === null) {
      return;
    }
    const index = findUpdateIndex(this._summaries(), message);
    if (index < 0) {
      console.warn(
        `${LOG} update_cell: no cell for session ${message.session} iteration ${message.iteration}`
      );
      return;
    }
    const cell = model.cells.get(index);
    const rlm = readCellRlm(cell.getMetadata('rlm'));
    if (rlm === null) {
      return;
    }
    cell.setMetadata('rlm', mergeRlmMetadata(rlm, message.metadata));
    this.scheduleDecorate();
  }

  /**
   * A (re)connected page: insert the session's cells this notebook lacks (a reload reverted it to
   * its last save; a second page has the saved copy), and fill in the outputs of step cells saved
   * before they ran. Runs nothing: a waiting step follows as an `insert_cell` with `run`.
   */
  private _sync(message: ISyncMsg): void {
    const notebook = this._panel.content;
    const model = notebook.model;
    if (model === null) {
      return;
    }
    for (const { index, cell } of planSync(this._summaries(), message)) {
      const metadata: { [key: string]: unknown } = { ...cell.metadata };
      if (cell.collapsed) {
        metadata.jupyter = { source_hidden: true };
      }
      model.sharedModel.insertCell(index, {
        id: cell.cell_id,
        cell_type: cell.cell_type,
        source: cell.source,
        metadata: metadata as JSONObject,
        ...(cell.cell_type === 'code'
          ? { outputs: cell.outputs as unknown as Outputs, execution_count: null }
          : {})
      });
      const widget = notebook.widgets.find(w => w.model === model.cells.get(index));
      if (widget instanceof MarkdownCell) {
        widget.rendered = true;
      }
    }
    for (const cell of message.cells) {
      this._fillOutputs(cell);
    }
    this.scheduleDecorate();
  }

  /** A step cell saved while it ran has no outputs: show what its record says it printed. */
  private _fillOutputs(cell: ISyncCell): void {
    const model = this._panel.content.model;
    if (model === null || cell.cell_type !== 'code' || cell.outputs.length === 0) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      const current = model.cells.get(i);
      if (current.id === cell.cell_id && current.type === 'code') {
        const code = current as ICodeCellModel;
        if (code.outputs.length === 0) {
          code.outputs.fromJSON(cell.outputs as unknown as Outputs);
        }
        return;
      }
    }
  }

  private _status(message: IStatusMsg): void {
    this.statusWidget.setStatus(message);
  }

  // ---- decorations -------------------------------------------------------------------------

  /** Re-sync every cell's decoration on the next frame (coalesces bursts of changes). */
  scheduleDecorate(): void {
    if (this._decorateScheduled || this._disposed) {
      return;
    }
    this._decorateScheduled = true;
    requestAnimationFrame(() => {
      this._decorateScheduled = false;
      if (this._disposed) {
        return;
      }
      for (const cell of this._panel.content.widgets) {
        decorateCell(cell);
      }
    });
  }
}

/** This tab's previous client on the kernel (see `rememberClient`), or null. */
function previousClient(kernel: Kernel.IKernelConnection, path: string): string | null {
  try {
    return rememberClient(window.sessionStorage, kernel.id, path, kernel.clientId);
  } catch {
    return null; // storage disabled: a reload then loses what was in flight, nothing else
  }
}

function parentMsgId(parentHeader: unknown): string | null {
  if (typeof parentHeader === 'object' && parentHeader !== null && 'msg_id' in parentHeader) {
    const id = parentHeader.msg_id;
    return typeof id === 'string' ? id : null;
  }
  return null;
}
