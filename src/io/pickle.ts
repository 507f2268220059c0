// A safe, allow-listed unpickler for Python pickle protocols 0-5. Hand-written on purpose: the npm
// packages that read pickles (pickleparser, jpickle, unpickle) either turn any class they meet into a
// placeholder object or are unmaintained, and none refuses unknown globals by default, which is the
// one property that matters for files users download. Nothing here executes: a GLOBAL resolves only through the
// caller's allow-list of plain JS functions, and anything else is refused by name.
import { CtsError } from '../base/errors.js';

/** What an allowed global does when a pickle calls it (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ). */
export type PyCallable = (args: readonly unknown[], kwargs?: Map<unknown, unknown>) => unknown;

/** Allow-list: `'module.name'` (e.g. `'collections.OrderedDict'`) -> the JS function standing in for it. */
export type AllowList = Readonly<Record<string, PyCallable>>;

/** A resolved, allowed global as it sits on the stack (a class or function of the pickle). */
export class PyGlobal {
  /** Creates a reference to `module.name`, callable through `call`. */
  constructor(readonly module: string, readonly name: string, readonly call: PyCallable) {}
  /** `module.name`. */
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Objects made by allow-list functions implement this method to receive BUILD's state (`__setstate__`). */
export const PY_SETSTATE: unique symbol = Symbol('pySetState');

/** Options of {@link unpickle}. */
export interface UnpickleOptions {
  /** File or stream name used in every error message. */
  source: string;
  /** The only globals the pickle may use; default: none. */
  globals?: AllowList;
  /** Why a global was refused, ending the message `refusing to load X from SOURCE: ...`. */
  allowedWhat?: string;
  /** PERSID/BINPERSID handler (e.g. torch storages); without it such ids are an error. */
  persistentLoad?: (pid: unknown) => unknown;
}

// Tuples are frozen arrays, lists mutable ones: one JS type, distinguishable where it matters.
const EMPTY_TUPLE: readonly unknown[] = Object.freeze([]);
const attributes = new WeakMap<object, Map<unknown, unknown>>();
// Python 2 names that protocol 0-2 pickles use (pickle's fix_imports, the part that matters here).
const PY2_MODULES = new Map([['__builtin__', 'builtins'], ['copy_reg', 'copyreg']]);
const MAX_PROTOCOL = 5;

/** True for a Python tuple (a frozen array); lists are plain arrays. */
export function isPyTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** Instance attributes set by BUILD on an object that has no {@link PY_SETSTATE} (e.g. an OrderedDict's `_metadata`). */
export function pyAttributes(obj: object): Map<unknown, unknown> | undefined {
  return attributes.get(obj);
}

/** Short Python-ish name of a value's type, for messages. */
export function pyTypeName(v: unknown): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (isPyTuple(v)) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof PyGlobal) return v.qualifiedName;
  return (v as object)?.constructor?.name ?? typeof v;
}

/** Decodes bytes as ISO-8859-1 (TextDecoder's 'latin1' is really windows-1252, so Buffer does it). */
export function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Bytes of a string whose characters are all < 256 (Python's `s.encode('latin1')`), or undefined. */
export function latin1Bytes(s: string): Uint8Array | undefined {
  if (/[^\x00-\xff]/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

function toInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Plain-data builtins that protocols 0-3 spell as globals: set, frozenset, bytearray, bytes,
 * `_codecs.encode(str, 'latin1')` (how protocol < 3 writes bytes) and `collections.OrderedDict`.
 */
export const PLAIN_DATA_GLOBALS: AllowList = {
  'builtins.set': (a) => new Set(iterable(a[0] ?? [], 'set')),
  'builtins.frozenset': (a) => new Set(iterable(a[0] ?? [], 'frozenset')),
  'builtins.bytes': (a) => encodeArgs(a, 'bytes'),
  'builtins.bytearray': (a) => encodeArgs(a, 'bytearray'),
  '_codecs.encode': (a) => encodeArgs(a, '_codecs.encode'),
  'collections.OrderedDict': (a) => new Map(a.length ? (iterable(a[0], 'OrderedDict') as [unknown, unknown][]) : []),
};

function iterable(v: unknown, what: string): unknown[] {
  if (Array.isArray(v)) return [...v];
  if (v instanceof Set) return [...v];
  throw new Error(`${what}() expects a list or tuple, got ${pyTypeName(v)}`);
}

function encodeArgs(a: readonly unknown[], what: string): Uint8Array {
  if (a.length === 0) return new Uint8Array(0);
  const [v, enc] = a;
  if (v instanceof Uint8Array && a.length === 1) return v.slice();
  if (typeof v === 'string' && typeof enc === 'string' && /^latin[-_]?1$/i.test(enc)) {
    const b = latin1Bytes(v);
    if (b) return b;
  }
  throw new Error(`${what}() is only supported on bytes or a latin1 str, got (${a.map(pyTypeName).join(', ')})`);
}

/** Unpickles the whole of `bytes` (one pickle; trailing bytes are ignored, as by pickle.loads). */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  return unpickleAt(bytes, 0, opts).value;
}

/** Unpickles one pickle starting at `offset`; `end` is the byte after its STOP (legacy torch files chain several). */
export function unpickleAt(bytes: Uint8Array, offset: number, opts: UnpickleOptions): { value: unknown; end: number } {
  return new Unpickler(bytes, offset, opts).load();
}

class Unpickler {
  private readonly b: Uint8Array;
  private pos: number;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private readonly src: string;
  private proto = 0;
  private opStart = 0;

  constructor(bytes: Uint8Array, offset: number, private readonly o: UnpickleOptions) {
    // A plain view, so slice() copies even when the caller passed a Node Buffer (whose slice() does not).
    this.b = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = offset;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.src = o.source;
  }

  private fail(msg: string): never {
    throw new CtsError(`${this.src}: ${msg} at byte ${this.opStart} of the pickle data`);
  }

  private need(n: number, what: string): void {
    if (n > this.b.byteLength - this.pos) {
      throw new CtsError(`${this.src} is truncated or malformed: ${what} at byte ${this.opStart} needs ${n} bytes, ${this.b.byteLength - this.pos} left`);
    }
  }

  private bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads a little-endian number of `n` bytes with the given DataView getter. */
  private num(n: number, get: (at: number) => number): number {
    this.need(n, 'an opcode argument');
    const v = get(this.pos);
    this.pos += n;
    return v;
  }

  private u8 = (): number => this.num(1, (at) => this.b[at]!);
  private u16 = (): number => this.num(2, (at) => this.view.getUint16(at, true));
  private i32 = (): number => this.num(4, (at) => this.view.getInt32(at, true));
  private u32 = (): number => this.num(4, (at) => this.view.getUint32(at, true));
  // Lengths past MAX_SAFE_INTEGER exceed any buffer, so clamping lets `need` report them as truncation.
  private u64 = (): number => this.num(8, (at) => Math.min(Number(this.view.getBigUint64(at, true)), Number.MAX_SAFE_INTEGER));

  private line(what: string): string {
    const nl = this.b.indexOf(0x0a, this.pos);
    if (nl < 0) this.need(this.b.byteLength - this.pos + 1, what);
    const s = latin1(this.b.subarray(this.pos, nl));
    this.pos = nl + 1;
    return s;
  }

  private utf8(b: Uint8Array): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return this.fail('invalid UTF-8 in a str');
    }
  }

  private push(v: unknown): void {
    this.stack.push(v);
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow (malformed pickle)');
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow (malformed pickle)');
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (prev === undefined) this.fail('MARK expected but missing (malformed pickle)');
    this.stack = prev;
    return items;
  }

  private global(module: string, name: string): PyGlobal {
    const mod = this.proto < 3 ? (PY2_MODULES.get(module) ?? module) : module;
    const key = `${mod}.${name}`;
    const globals = this.o.globals ?? {};
    if (!Object.prototype.hasOwnProperty.call(globals, key)) {
      throw new CtsError(`refusing to load ${key} from ${this.src}: ${this.o.allowedWhat ?? 'it is not on the allow-list'}`);
    }
    return new PyGlobal(mod, name, globals[key]!);
  }

  private call(fn: unknown, args: unknown, kwargs: Map<unknown, unknown> | undefined, op: string): unknown {
    if (!(fn instanceof PyGlobal)) this.fail(`${op} on a ${pyTypeName(fn)}, expected an allowed class or function`);
    if (!Array.isArray(args)) this.fail(`${op} arguments are a ${pyTypeName(args)}, expected a tuple`);
    try {
      return fn.call(args, kwargs);
    } catch (e) {
      if (e instanceof CtsError) throw e;
      return this.fail(`${fn.qualifiedName}(...) rejected its arguments (${(e as Error).message})`);
    }
  }

  private build(state: unknown): void {
    const inst = this.top();
    const hook = (inst as { [PY_SETSTATE]?: unknown } | null)?.[PY_SETSTATE];
    if (typeof hook === 'function') {
      try {
        (hook as (s: unknown) => void).call(inst, state);
      } catch (e) {
        if (e instanceof CtsError) throw e;
        this.fail(`BUILD of a ${pyTypeName(inst)} failed (${(e as Error).message})`);
      }
      return;
    }
    if (state === null) return;
    const [dict, slots] = isPyTuple(state) && state.length === 2 ? state : [state, null];
    if (typeof inst !== 'object' || inst === null || !(dict === null || dict instanceof Map) || !(slots === null || slots instanceof Map)) {
      this.fail(`BUILD of a ${pyTypeName(inst)} with a ${pyTypeName(state)} state is not supported`);
    }
    const attrs = attributes.get(inst) ?? new Map<unknown, unknown>();
    for (const m of [dict, slots]) if (m) for (const [k, v] of m) attrs.set(k, v);
    attributes.set(inst, attrs);
  }

  private persistent(pid: unknown): unknown {
    if (!this.o.persistentLoad) this.fail('persistent id found, but this file type has none');
    return this.o.persistentLoad(pid);
  }

  private list(): unknown[] {
    const l = this.top();
    if (!Array.isArray(l) || Object.isFrozen(l)) this.fail(`append to a ${pyTypeName(l)}, expected a list`);
    return l;
  }

  private dict(): Map<unknown, unknown> {
    const d = this.top();
    if (!(d instanceof Map)) this.fail(`setitem on a ${pyTypeName(d)}, expected a dict`);
    return d;
  }

  private getMemo(i: number): void {
    if (!this.memo.has(i)) this.fail(`memo entry ${i} read before it was written`);
    this.push(this.memo.get(i));
  }

  private long(n: number): number | bigint {
    const b = this.bytes(n, 'LONG1/LONG4');
    if (n === 0) return 0;
    // Little-endian two's complement; going through hex keeps huge (hostile) lengths linear.
    let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return toInt(v);
  }

  private len32(op: string): number {
    const n = this.i32();
    if (n < 0) this.fail(`negative ${op} length`);
    return n;
  }

  private textFloat(line: string): number {
    const s = line.trim();
    if (/^[+-]?inf(inity)?$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
    if (/^[+-]?nan$/i.test(s)) return NaN;
    const v = Number(s);
    if (s === '' || Number.isNaN(v)) this.fail(`FLOAT argument '${s}' is not a number`);
    return v;
  }

  private setItems(d: Map<unknown, unknown>, items: unknown[]): Map<unknown, unknown> {
    if (items.length % 2) this.fail('dict items come in an odd number');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
    return d;
  }

  private textInt(s: string, op: string): number | bigint {
    const t = s.replace(/L$/, '');
    if (!/^[+-]?\d+$/.test(t)) this.fail(`${op} argument '${s}' is not an integer`);
    return toInt(BigInt(t));
  }

  load(): { value: unknown; end: number } {
    const b = this.b;
    for (;;) {
      this.opStart = this.pos;
      if (this.pos >= b.byteLength) this.need(1, 'the next opcode (no STOP)');
      const op = b[this.pos++]!;
      switch (op) {
        case 0x80: // PROTO
          this.proto = this.u8();
          if (this.proto > MAX_PROTOCOL) this.fail(`unsupported pickle protocol ${this.proto}, expected 0-${MAX_PROTOCOL}`);
          break;
        case 0x95: this.need(this.u64(), 'FRAME'); break; // FRAME: a length hint; the data follows inline
        case 0x2e: return { value: this.pop(), end: this.pos }; // STOP
        case 0x28: this.metastack.push(this.stack); this.stack = []; break; // MARK
        case 0x30: if (this.stack.length) this.stack.pop(); else this.popMark(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x49: { // INT (protocol 0 also spells booleans I01/I00)
          const s = this.line('INT');
          this.push(s === '01' ? true : s === '00' ? false : this.textInt(s, 'INT'));
          break;
        }
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x4c: this.push(this.textInt(this.line('LONG'), 'LONG')); break; // LONG
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: this.push(this.long(this.len32('LONG4'))); break; // LONG4
        case 0x46: this.push(this.textFloat(this.line('FLOAT'))); break; // FLOAT
        case 0x47: // BINFLOAT (big-endian double)
          this.need(8, 'BINFLOAT');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        // Python 2 str (STRING, BINSTRING, SHORT_BINSTRING) is kept as latin1 text, so bytes survive unchanged.
        case 0x53: this.push(decodeStringLiteral(this.line('STRING'), (m) => this.fail(m))); break;
        case 0x54: this.push(latin1(this.bytes(this.len32('BINSTRING'), 'BINSTRING'))); break;
        case 0x55: this.push(latin1(this.bytes(this.u8(), 'SHORT_BINSTRING'))); break;
        case 0x56: this.push(decodeRawUnicodeEscape(this.line('UNICODE'), (m) => this.fail(m))); break; // UNICODE
        case 0x58: this.push(this.utf8(this.bytes(this.u32(), 'BINUNICODE'))); break;
        case 0x8c: this.push(this.utf8(this.bytes(this.u8(), 'SHORT_BINUNICODE'))); break;
        case 0x8d: this.push(this.utf8(this.bytes(this.u64(), 'BINUNICODE8'))); break;
        case 0x42: this.push(this.bytes(this.u32(), 'BINBYTES').slice()); break;
        case 0x43: this.push(this.bytes(this.u8(), 'SHORT_BINBYTES').slice()); break;
        case 0x8e: this.push(this.bytes(this.u64(), 'BINBYTES8').slice()); break;
        case 0x96: this.push(this.bytes(this.u64(), 'BYTEARRAY8').slice()); break;
        case 0x29: this.push(EMPTY_TUPLE); break; // EMPTY_TUPLE
        case 0x74: this.push(Object.freeze(this.popMark())); break; // TUPLE
        case 0x85: case 0x86: case 0x87: { // TUPLE1, TUPLE2, TUPLE3
          const n = op - 0x84;
          if (this.stack.length < n) this.fail(`TUPLE${n} needs ${n} stack items`);
          this.push(Object.freeze(this.stack.splice(this.stack.length - n, n)));
          break;
        }
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x6c: this.push(this.popMark()); break; // LIST
        case 0x61: { const v = this.pop(); this.list().push(v); break; } // APPEND
        case 0x65: { const items = this.popMark(), l = this.list(); for (const v of items) l.push(v); break; } // APPENDS
        case 0x7d: this.push(new Map()); break; // EMPTY_DICT
        case 0x64: this.push(this.setItems(new Map(), this.popMark())); break; // DICT
        case 0x73: { const v = this.pop(), k = this.pop(); this.dict().set(k, v); break; } // SETITEM
        case 0x75: { const items = this.popMark(); this.setItems(this.dict(), items); break; } // SETITEMS
        case 0x8f: this.push(new Set()); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = this.popMark(), s = this.top();
          if (!(s instanceof Set)) this.fail(`ADDITEMS on a ${pyTypeName(s)}, expected a set`);
          for (const v of items) s.add(v);
          break;
        }
        case 0x91: this.push(new Set(this.popMark())); break; // FROZENSET
        case 0x67: this.getMemo(Number(this.textInt(this.line('GET'), 'GET'))); break; // GET
        case 0x68: this.getMemo(this.u8()); break; // BINGET
        case 0x6a: this.getMemo(this.u32()); break; // LONG_BINGET
        case 0x70: this.memo.set(Number(this.textInt(this.line('PUT'), 'PUT')), this.top()); break; // PUT
        case 0x71: this.memo.set(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memo.set(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memo.set(this.memo.size, this.top()); break; // MEMOIZE
        case 0x63: { const module = this.line('GLOBAL'); this.push(this.global(module, this.line('GLOBAL'))); break; } // GLOBAL
        case 0x93: { // STACK_GLOBAL
          const name = this.pop(), module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two str');
          this.push(this.global(module, name));
          break;
        }
        case 0x52: { const args = this.pop(); this.push(this.call(this.pop(), args, undefined, 'REDUCE')); break; } // REDUCE
        case 0x81: { const args = this.pop(); this.push(this.call(this.pop(), args, undefined, 'NEWOBJ')); break; } // NEWOBJ: cls.__new__(cls, *args)
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop(), args = this.pop();
          if (!(kwargs instanceof Map)) this.fail('NEWOBJ_EX keyword arguments are not a dict');
          this.push(this.call(this.pop(), args, kwargs, 'NEWOBJ_EX'));
          break;
        }
        case 0x69: { // INST (protocol 0 instance)
          const cls = this.global(this.line('INST'), this.line('INST'));
          this.push(this.call(cls, this.popMark(), undefined, 'INST'));
          break;
        }
        case 0x6f: { const [cls, ...args] = this.popMark(); this.push(this.call(cls, args, undefined, 'OBJ')); break; } // OBJ (protocol 1)
        case 0x62: this.build(this.pop()); break; // BUILD
        case 0x50: this.push(this.persistent(this.line('PERSID'))); break; // PERSID
        case 0x51: this.push(this.persistent(this.pop())); break; // BINPERSID
        case 0x82: case 0x83: case 0x84: // EXT1/2/4: globals by registry code, never allowed
          throw new CtsError(`refusing to load an extension-registry global (EXT) from ${this.src}: ${this.o.allowedWhat ?? 'it is not on the allow-list'}`);
        case 0x97: case 0x98: this.fail('out-of-band buffers (protocol 5 NEXT_BUFFER) are not supported'); break;
        default: this.fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} (not a pickle, or a corrupt one)`);
      }
    }
  }
}

/** Decodes a protocol-0 STRING argument: a quoted Python 2 str literal, to latin1 text. */
function decodeStringLiteral(s: string, fail: (m: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('STRING argument is not a quoted literal');
  const body = s.slice(1, -1);
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"', '\n': '' };
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) fail('STRING literal ends in a backslash');
    if (simple[e] !== undefined) out += simple[e];
    else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      const m = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      out += String.fromCharCode(parseInt(m, 8) & 0xff);
      i += m.length - 1;
    } else out += `\\${e}`;
  }
  return out;
}

/** Python's raw-unicode-escape decoding: only \uXXXX / \UXXXXXXXX after an odd run of backslashes are escapes. */
function decodeRawUnicodeEscape(s: string, fail: (m: string) => never): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '\\') {
      out += s[i++];
      continue;
    }
    const start = i;
    while (i < s.length && s[i] === '\\') i++;
    const run = i - start;
    const kind = s[i];
    const width = kind === 'u' ? 4 : kind === 'U' ? 8 : 0;
    const hex = s.slice(i + 1, i + 1 + width);
    if (run % 2 === 1 && width && /^[0-9a-fA-F]+$/.test(hex) && hex.length === width) {
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) fail(`UNICODE escape \\U${hex} is out of range`);
      out += '\\'.repeat(run - 1) + String.fromCodePoint(cp);
      i += 1 + width;
    } else out += '\\'.repeat(run);
  }
  return out;
}
