// The comm protocol (v1) against the fixture that tests/test_protocol.py loads too.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  COMM_TARGET,
  FRONTEND_MESSAGE_TYPES,
  IStatusMsg,
  KERNEL_MESSAGE_TYPES,
  PROTOCOL_VERSION,
  ProtocolError,
  isKernelMessage,
  readCellRlm,
  tryValidate,
  validate
} from '../src/protocol';
import { statusDetail } from '../src/logic';
import { EXTENSION_VERSION } from '../src/version';

// Compiled to lib-test/test/, so the repository root is three levels up.
const ROOT = join(__dirname, '..', '..', '..');

interface IValidCase {
  name: string;
  direction: 'kernel_to_frontend' | 'frontend_to_kernel';
  message: { type: string; [key: string]: unknown };
}

interface IInvalidCase {
  name: string;
  message: unknown;
  field: string | null;
}

interface IStatusLineCase {
  name: string;
  message: unknown;
  line: string;
}

interface IFixture {
  protocol: number;
  comm_target: string;
  valid: IValidCase[];
  invalid: IInvalidCase[];
  status_lines: IStatusLineCase[];
}

const fixture = JSON.parse(
  readFileSync(join(ROOT, 'tests', 'fixtures', 'protocol_v1.json'), 'utf-8')
) as IFixture;

describe('protocol fixture', () => {
  it('matches the constants', () => {
    assert.equal(fixture.protocol, PROTOCOL_VERSION);
    assert.equal(fixture.comm_target, COMM_TARGET);
  });

  it('has one valid example of every message type', () => {
    const seen = new Set(fixture.valid.map(c => c.message.type));
    assert.deepEqual([...seen].sort(), [...KERNEL_MESSAGE_TYPES, ...FRONTEND_MESSAGE_TYPES].sort());
  });

  for (const c of fixture.valid) {
    it(`accepts: ${c.name}`, () => {
      const message = validate(c.message);
      assert.equal(message, c.message);
      assert.equal(isKernelMessage(message), c.direction === 'kernel_to_frontend');
    });
  }

  for (const c of fixture.status_lines) {
    it(`writes the kernel's status line: ${c.name}`, () => {
      // The same line as rlm_kernel._snapshot.describe (tests/test_protocol.py checks that side).
      assert.equal(statusDetail(validate(c.message) as IStatusMsg), c.line);
    });
  }

  for (const c of fixture.invalid) {
    it(`rejects: ${c.name}`, () => {
      assert.throws(
        () => validate(c.message),
        (error: unknown) => {
          assert.ok(error instanceof ProtocolError);
          assert.ok(error.message.startsWith('rlm_kernel protocol 1: '), error.message);
          if (c.field !== null) {
            assert.ok(error.message.includes(`'${c.field}'`), error.message);
          }
          return true;
        }
      );
      assert.equal(tryValidate(c.message), null);
    });
  }
});

describe('protocol details', () => {
  it('names the type and the problem like the Python side', () => {
    assert.throws(
      () => validate({ type: 'control', action: 'explode', session: 's' }),
      {
        message:
          "rlm_kernel protocol 1: 'control' message: field 'action' must be one of " +
          "'pause', 'resume', 'step', 'stop', got string"
      }
    );
    assert.throws(() => validate({ type: 'mark_stale', session: 's', from_iteration: 1 }), {
      message: "rlm_kernel protocol 1: 'mark_stale' message: field 'remove' is missing"
    });
  });

  it('reads well-formed cell metadata only', () => {
    assert.deepEqual(readCellRlm({ session: 's', iteration: 2, role: 'step' }), {
      session: 's',
      iteration: 2,
      role: 'step'
    });
    assert.equal(readCellRlm({ session: 's', iteration: '2', role: 'step' }), null);
    assert.equal(readCellRlm({ session: 's', iteration: 2, role: 'boss' }), null);
    assert.equal(readCellRlm(undefined), null);
  });

  it('sends the package.json version in hello', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'labextension', 'package.json'), 'utf-8')) as {
      version: string;
    };
    assert.equal(EXTENSION_VERSION, pkg.version);
  });
});
