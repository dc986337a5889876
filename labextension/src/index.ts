/**
 * rlm_kernel JupyterLab / Notebook 7 extension: every notebook panel gets a controller that tags
 * execute requests, keeps a comm on target `rlm_kernel`, inserts and runs RLM iteration cells,
 * marks stale ones, decorates RLM cells and shows the session status in the toolbar.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { NotebookController } from './controller';
import { FrontendName, PROTOCOL_VERSION } from './protocol';
import { EXTENSION_VERSION } from './version';

export const PLUGIN_ID = 'rlm_kernel:plugin';

const controllers = new WeakMap<NotebookPanel, NotebookController>();

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Runs Recursive Language Model sessions as real notebook cells.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const frontend: FrontendName = /notebook/i.test(app.name) ? 'notebook' : 'jupyterlab';
    const add = (panel: NotebookPanel): void => {
      if (!controllers.has(panel)) {
        controllers.set(panel, new NotebookController(panel, frontend));
      }
    };
    tracker.forEach(add);
    tracker.widgetAdded.connect((_, panel) => add(panel));
    // A DOM marker for tests and for people debugging which frontend has the extension.
    document.body.dataset.rlmKernelExtension = EXTENSION_VERSION;
    console.log(
      `[rlm_kernel] extension ${EXTENSION_VERSION} activated (protocol ${PROTOCOL_VERSION}, ${frontend})`
    );
  }
};

export default plugin;
