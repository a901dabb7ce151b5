'use strict';
// The Node.js worker: load one JavaScript model, then serve framed calls until told to stop.
//
// It speaks the worker protocol of docs/protocol.md (version 1) and uses only Node's standard
// library. The gateway launches it through algora/environments/node.py, which hands it the
// protocol on private file descriptors 3 (frames in) and 4 (frames out) and points fd 0 at
// /dev/null and fd 1 at stderr, so nothing the model writes can corrupt the frame stream.
//
//   node worker.js --source DIR --entrypoint model.js:apply [--cpu-limit SECONDS]
//                  [--gateway-socket PATH]
//
// Model conventions (docs/models.md): a function `apply(input)`; or a class (instantiated once
// with no arguments) or an object with `load()`, `predict(input)` and optionally
// `predictBatch(inputs)`. Any of them may be async.

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

const PROTOCOL_VERSION = 1;
const MAGIC = Buffer.from('ALG1', 'ascii');
const PREFIX_SIZE = 16;
const MAX_HEADER = 16 * 1024 * 1024;
const MAX_PAYLOAD = 4n * 1024n * 1024n * 1024n;
const STDOUT_LIMIT = 1024 * 1024;
const TRUNCATED = '\n[algora: output truncated at 1 MiB]\n';
const ERROR_TEXT_LIMIT = 64 * 1024;
const FD_IN = 3;
const FD_OUT = 4;

class ProtocolError extends Error {}
class InvalidPayload extends Error {}
class NotSerializable extends Error {}

// ---------------------------------------------------------------- frames

function asciiJson(value) {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}

function writeFrame(header, payload = Buffer.alloc(0)) {
  const head = Buffer.from(asciiJson(header), 'ascii');
  const prefix = Buffer.alloc(PREFIX_SIZE);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(head.length, 4);
  prefix.writeBigUInt64BE(BigInt(payload.length), 8);
  let data = Buffer.concat([prefix, head, payload]);
  while (data.length > 0) {
    let written;
    try {
      written = fs.writeSync(FD_OUT, data);
    } catch (err) {
      if (err.code === 'EAGAIN') continue;
      process.exit(1); // the gateway is gone: nobody to answer
    }
    data = data.subarray(written);
  }
}

class FrameReader {
  constructor(fd) {
    this.fd = fd;
    this.chunks = [];
    this.size = 0;
    this.eof = false;
  }

  fill() {
    return new Promise((resolve, reject) => {
      const buf = Buffer.allocUnsafe(1 << 16);
      fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN') return resolve();
          return reject(err);
        }
        if (n === 0) this.eof = true;
        else {
          this.chunks.push(buf.subarray(0, n));
          this.size += n;
        }
        resolve();
      });
    });
  }

  // Exactly `n` bytes; null at a clean end of input before the first byte.
  async take(n, atStart) {
    while (this.size < n) {
      if (this.eof) {
        if (atStart && this.size === 0) return null;
        throw new ProtocolError(`stream ended inside a frame (${this.size} of ${n} bytes)`);
      }
      await this.fill();
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    return out;
  }

  async read() {
    const prefix = await this.take(PREFIX_SIZE, true);
    if (prefix === null) return null;
    if (!prefix.subarray(0, 4).equals(MAGIC)) throw new ProtocolError('bad frame magic');
    const headerLen = prefix.readUInt32BE(4);
    const payloadLen = prefix.readBigUInt64BE(8);
    if (headerLen > MAX_HEADER) throw new ProtocolError(`frame header too large: ${headerLen}`);
    if (payloadLen > MAX_PAYLOAD) throw new ProtocolError(`frame payload too large: ${payloadLen}`);
    const raw = await this.take(headerLen, false);
    let header;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
    } catch (err) {
      throw new ProtocolError(`frame header is not UTF-8 JSON: ${err.message}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) {
      throw new ProtocolError('frame header must be a JSON object');
    }
    const payload = Buffer.from(await this.take(Number(payloadLen), false));
    return [header, payload];
  }
}

// ---------------------------------------------------------------- tensors

const DATATYPES = {
  BOOL: [Uint8Array, 1],
  INT8: [Int8Array, 1],
  INT16: [Int16Array, 2],
  INT32: [Int32Array, 4],
  INT64: [BigInt64Array, 8],
  UINT8: [Uint8Array, 1],
  UINT16: [Uint16Array, 2],
  UINT32: [Uint32Array, 4],
  UINT64: [BigUint64Array, 8],
  FP16: [Float32Array, 2], // no Float16Array in Node 20: widened to FP32 values
  FP32: [Float32Array, 4],
  FP64: [Float64Array, 8],
};

if (require('os').endianness() !== 'LE') {
  throw new Error('the Node worker needs a little-endian machine');
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function floatToHalf(value) {
  const f32 = new Float32Array([value]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >> 16) & 0x8000;
  const exp = ((x >> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >> shift;
    if ((mant >> (shift - 1)) & 1) half += 1;
    return sign | half;
  }
  let half = sign | (exp << 10) | (mant >> 13);
  if (mant & 0x1000) half += 1; // round half up (carries into the exponent correctly)
  return half;
}

function elementCount(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

function decodeTensor(desc, raw) {
  const { name, datatype, shape } = desc;
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    const data = [];
    let offset = 0;
    while (offset < raw.length) {
      if (offset + 4 > raw.length) throw new InvalidPayload(`tensor ${name}: truncated BYTES element`);
      const n = raw.readUInt32LE(offset);
      offset += 4;
      if (offset + n > raw.length) throw new InvalidPayload(`tensor ${name}: truncated BYTES element`);
      data.push(Buffer.from(raw.subarray(offset, offset + n)));
      offset += n;
    }
    if (data.length !== count) {
      throw new InvalidPayload(`tensor ${name}: ${data.length} BYTES elements for shape [${shape}]`);
    }
    return { datatype, shape, data };
  }
  const [Typed, size] = DATATYPES[datatype];
  if (raw.length !== count * size) {
    throw new InvalidPayload(
      `tensor ${name}: ${raw.length} bytes, but ${datatype} of shape [${shape}] takes ${count * size}`,
    );
  }
  if (datatype === 'FP16') {
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = halfToFloat(raw.readUInt16LE(i * 2));
    return { datatype, shape, data };
  }
  const copy = new Uint8Array(raw); // aligned, and the model's own to change
  return { datatype, shape, data: new Typed(copy.buffer, 0, count) };
}

function splitTensors(descriptors, payload) {
  if (!Array.isArray(descriptors) || descriptors.length === 0) {
    throw new InvalidPayload('a tensors call needs a non-empty tensors list');
  }
  const out = {};
  let offset = 0;
  for (const desc of descriptors) {
    if (desc === null || typeof desc !== 'object') throw new InvalidPayload('a tensor descriptor must be an object');
    const { name, datatype, shape, length } = desc;
    if (typeof name !== 'string' || name === '') throw new InvalidPayload('a tensor needs a non-empty name');
    if (datatype !== 'BYTES' && !(datatype in DATATYPES)) {
      throw new InvalidPayload(`tensor ${name}: unknown datatype ${JSON.stringify(datatype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new InvalidPayload(`tensor ${name}: shape must be a list of non-negative integers`);
    }
    if (!Number.isInteger(length) || length < 0 || offset + length > payload.length) {
      throw new InvalidPayload(`tensor ${name}: its length does not fit the payload`);
    }
    out[name] = decodeTensor(desc, payload.subarray(offset, offset + length));
    offset += length;
  }
  if (offset !== payload.length) throw new InvalidPayload('tensor lengths do not add up to the payload');
  return out;
}

function isTypedArray(v) {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function isTensor(v) {
  return (
    v !== null && typeof v === 'object' && !Array.isArray(v) && !isTypedArray(v) &&
    'data' in v && (isTypedArray(v.data) || Array.isArray(v.data))
  );
}

function typedDatatype(arr) {
  if (arr instanceof Float32Array) return 'FP32';
  if (arr instanceof Float64Array) return 'FP64';
  if (arr instanceof Int8Array) return 'INT8';
  if (arr instanceof Int16Array) return 'INT16';
  if (arr instanceof Int32Array) return 'INT32';
  if (arr instanceof BigInt64Array) return 'INT64';
  if (arr instanceof Uint8Array || arr instanceof Uint8ClampedArray) return 'UINT8';
  if (arr instanceof Uint16Array) return 'UINT16';
  if (arr instanceof Uint32Array) return 'UINT32';
  if (arr instanceof BigUint64Array) return 'UINT64';
  throw new TypeError(`unsupported typed array ${arr.constructor.name}`);
}

// Nested plain arrays -> [flat values, shape]; they must be rectangular.
function flatten(value) {
  if (!Array.isArray(value)) return [[value], []];
  if (value.length === 0) return [[], [0]];
  const parts = value.map(flatten);
  const inner = JSON.stringify(parts[0][1]);
  if (!parts.every((p) => JSON.stringify(p[1]) === inner)) throw new TypeError('nested lists are not rectangular');
  return [parts.flatMap((p) => p[0]), [value.length, ...parts[0][1]]];
}

function plainDatatype(values) {
  if (values.every((v) => typeof v === 'boolean')) return 'BOOL';
  if (values.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) return 'INT64';
  if (values.every((v) => typeof v === 'number')) return 'FP64';
  if (values.every((v) => typeof v === 'string' || v instanceof Uint8Array)) return 'BYTES';
  throw new TypeError('values must be all booleans, all numbers, or all strings/bytes');
}

function encodeValues(datatype, values) {
  if (datatype === 'BYTES') {
    const parts = [];
    for (const v of values) {
      const b = typeof v === 'string' ? Buffer.from(v, 'utf-8') : Buffer.from(v);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      parts.push(len, b);
    }
    return Buffer.concat(parts);
  }
  if (datatype === 'FP16') {
    const out = Buffer.alloc(values.length * 2);
    values.forEach((v, i) => out.writeUInt16LE(floatToHalf(Number(v)), i * 2));
    return out;
  }
  const [Typed] = DATATYPES[datatype];
  const big = datatype === 'INT64' || datatype === 'UINT64';
  const arr = new Typed(values.length);
  values.forEach((v, i) => {
    arr[i] = big ? BigInt(v) : datatype === 'BOOL' ? (v ? 1 : 0) : Number(v);
  });
  return Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
}

function encodeTensor(value, name) {
  let datatype;
  let shape;
  let values;
  if (isTensor(value)) {
    const data = value.data;
    datatype = value.datatype || (isTypedArray(data) ? typedDatatype(data) : plainDatatype(flatten(data)[0]));
    values = isTypedArray(data) ? Array.from(data) : flatten(data)[0];
    shape = value.shape || [values.length];
  } else if (isTypedArray(value) && !Buffer.isBuffer(value)) {
    datatype = typedDatatype(value);
    values = Array.from(value);
    shape = [values.length];
  } else {
    [values, shape] = flatten(value);
    datatype = plainDatatype(values);
  }
  if (datatype !== 'BYTES' && !(datatype in DATATYPES)) throw new TypeError(`unknown datatype ${datatype}`);
  if (elementCount(shape) !== values.length) {
    throw new TypeError(`${values.length} values do not fill shape [${shape}]`);
  }
  const raw = encodeValues(datatype, values);
  return [{ name, datatype, shape, length: raw.length }, raw];
}

function encodeTensors(value, spec) {
  const names = Array.isArray(spec.output_names) ? spec.output_names.map(String) : [];
  const outName = (i) => (i < names.length ? names[i] : `output_${i}`);
  let named;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !isTensor(value) &&
      !isTypedArray(value)) {
    named = Object.entries(value);
  } else if (Array.isArray(value) && value.length > 0 && value.every((v) => isTensor(v) || isTypedArray(v))) {
    named = value.map((v, i) => [outName(i), v]);
  } else {
    named = [[outName(0), value]];
  }
  const descriptors = [];
  const bodies = [];
  for (const [name, item] of named) {
    try {
      const [desc, raw] = encodeTensor(item, name);
      descriptors.push(desc);
      bodies.push(raw);
    } catch (err) {
      throw new NotSerializable(
        'a model called with tensors returns tensors ({datatype, shape, data}), typed arrays ' +
          `(or an object or array of them), numbers, strings or nested arrays: ${err.message}`,
      );
    }
  }
  return ['tensors', Buffer.concat(bodies), descriptors];
}

// ---------------------------------------------------------------- payloads

function decodeCall(spec, payload) {
  const contentType = spec.content_type === undefined ? 'json' : spec.content_type;
  if (contentType === 'json') {
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch (err) {
      throw new InvalidPayload(`input is not valid UTF-8 JSON: ${err.message}`);
    }
  }
  if (contentType === 'text') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch (err) {
      throw new InvalidPayload(`input is not valid UTF-8 text: ${err.message}`);
    }
  }
  if (contentType === 'binary') return payload;
  if (contentType === 'tensors') {
    const values = splitTensors(spec.tensors, payload);
    const keys = Object.keys(values);
    const form = spec.input_form || (keys.length === 1 ? 'array' : 'dict');
    return form === 'array' && keys.length === 1 ? values[keys[0]] : values;
  }
  throw new InvalidPayload(`unknown content_type ${JSON.stringify(contentType)}`);
}

function jsonReplacer(key, value) {
  const original = this[key];
  if (original instanceof Uint8Array || original instanceof ArrayBuffer) {
    return Buffer.from(original).toString('base64');
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new NotSerializable(`result cannot be encoded as JSON: ${value} is not allowed`);
  }
  if (typeof value === 'bigint') {
    if (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) {
      return Number(value);
    }
    throw new NotSerializable(`result cannot be encoded as JSON: ${value} is too large`);
  }
  if (isTypedArray(value)) return Array.from(value, (v) => (typeof v === 'bigint' ? Number(v) : v));
  if (value instanceof Set) return Array.from(value);
  if (value instanceof Map) return Object.fromEntries(value);
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new NotSerializable(`result cannot be encoded as JSON: a ${typeof value}`);
  }
  return value;
}

function encodeResult(value) {
  if (value === undefined || value === null) return ['void', Buffer.alloc(0)];
  if (typeof value === 'string') return ['text', Buffer.from(value, 'utf-8')];
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) return ['binary', Buffer.from(value)];
  let text;
  try {
    text = JSON.stringify(value, jsonReplacer);
  } catch (err) {
    if (err instanceof NotSerializable) throw err;
    throw new NotSerializable(`result cannot be encoded as JSON: ${err.message}`);
  }
  return ['json', Buffer.from(asciiJson(JSON.parse(text)), 'ascii')];
}

function encodeAnswer(value, spec) {
  if (spec.content_type !== 'tensors') return [...encodeResult(value), null];
  return encodeTensors(value, spec);
}

// ---------------------------------------------------------------- stdout capture

class Capture {
  constructor() {
    this.parts = [];
    this.size = 0;
    this.truncated = false;
  }

  write(chunk) {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf-8');
    const room = STDOUT_LIMIT - this.size;
    if (room > 0) {
      const kept = text.slice(0, room);
      this.parts.push(kept);
      this.size += kept.length;
    }
    if (text.length > room) this.truncated = true;
  }

  value() {
    return this.parts.join('') + (this.truncated ? TRUNCATED : '');
  }
}

const originalWrite = process.stdout.write;

// Run `fn` with process.stdout (console.log included) going to `capture`.
async function captured(capture, fn) {
  process.stdout.write = function write(chunk, encoding, callback) {
    capture.write(chunk);
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
  try {
    return await fn();
  } finally {
    process.stdout.write = originalWrite;
  }
}

// ---------------------------------------------------------------- errors

let sourceDir = '';
const runtimeFile = __filename;

function shownText(text) {
  let out = text;
  for (const root of new Set([sourceDir, safeRealpath(sourceDir)])) {
    if (root) out = out.split(root + path.sep).join('');
  }
  for (const dir of (process.env.NODE_PATH || '').split(path.delimiter)) {
    if (dir) out = out.split(path.dirname(dir) + path.sep).join('<env>/');
  }
  return out;
}

function safeRealpath(p) {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

function errorObject(code, err) {
  const isError = err instanceof Error;
  let message = isError ? String(err.message) : String(err);
  let errorType = isError ? err.name || err.constructor.name : 'Error';
  if (err !== null && typeof err === 'object' && typeof err.error_type === 'string') errorType = err.error_type;
  let stack = isError && typeof err.stack === 'string' ? err.stack : `${errorType}: ${message}`;
  // The trace starts at the model's own frames: the worker's and Node's internals are dropped.
  stack = stack
    .split('\n')
    .filter((line) => !line.includes(runtimeFile) && !/\(node:internal|at node:internal/.test(line))
    .join('\n');
  message = shownText(message) || errorType;
  stack = shownText(stack) + '\n';
  if (message.length > ERROR_TEXT_LIMIT) message = message.slice(0, ERROR_TEXT_LIMIT) + ' ... (truncated)';
  if (stack.length > ERROR_TEXT_LIMIT) stack = '(truncated) ...\n' + stack.slice(-ERROR_TEXT_LIMIT);
  return { code, message, error_type: errorType, stacktrace: stack };
}

// ---------------------------------------------------------------- the model

function isClass(fn) {
  return typeof fn === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

async function importModule(file) {
  try {
    return require(file);
  } catch (err) {
    if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
    throw err;
  }
}

// `obj[name]` unless it is only inherited from Object or Function (every function has `apply`).
function exported(obj, name) {
  if (obj === null || obj === undefined || !(name in Object(obj))) return undefined;
  const value = obj[name];
  if (Object.prototype.hasOwnProperty.call(obj, name)) return value;
  return value === Function.prototype[name] || value === Object.prototype[name] ? undefined : value;
}

function pick(obj, dotted) {
  let value = obj;
  for (const part of dotted.split('.')) {
    value = exported(value, part);
    if (value === undefined) return undefined;
  }
  return value;
}

// `file[:attr]`: file relative to the source folder (".js" may be left out); attr may be dotted.
// Without attr: the module's `apply`, else its default export, else the module itself.
async function loadModel(source, entrypoint) {
  const colon = entrypoint.lastIndexOf(':');
  const fileName = colon > 0 ? entrypoint.slice(0, colon) : entrypoint;
  const attr = colon > 0 ? entrypoint.slice(colon + 1) : '';
  let file = path.resolve(source, fileName);
  if (!path.extname(file) && !fs.existsSync(file)) file += '.js';
  if (!(file + path.sep).startsWith(path.resolve(source) + path.sep) && file !== path.resolve(source)) {
    throw new Error(`entrypoint ${entrypoint} is outside the model's folder`);
  }
  const mod = await importModule(file);
  let target;
  if (attr) {
    target = pick(mod, attr);
    if (target === undefined && mod && mod.default) target = pick(mod.default, attr);
    if (target === undefined) throw new Error(`${fileName} has no ${attr}`);
  } else {
    target = exported(mod, 'apply') || exported(exported(mod, 'default'), 'apply');
    target = target || exported(mod, 'default') || mod;
  }
  let instance = null;
  if (isClass(target)) instance = new target();
  else if (target !== null && typeof target === 'object' && typeof target.predict === 'function') instance = target;
  else if (typeof target !== 'function') {
    throw new TypeError(`${entrypoint} is neither a function nor a class or object with predict()`);
  }
  if (instance !== null) {
    if (typeof instance.predict !== 'function') throw new TypeError(`${entrypoint} has no predict()`);
    if (typeof instance.load === 'function') await instance.load();
    const batch = instance.predictBatch || instance.predict_batch;
    return {
      kind: 'class',
      predict: instance.predict.bind(instance),
      predictBatch: typeof batch === 'function' ? batch.bind(instance) : null,
      takesParameters: instance.predict.length >= 2,
      schemas: instance,
    };
  }
  return { kind: 'function', predict: target, predictBatch: null, takesParameters: target.length >= 2, schemas: target };
}

function describe(model) {
  const schema = (name) => {
    const found = model.schemas && model.schemas[name];
    return found && typeof found === 'object' && !Array.isArray(found) ? found : {};
  };
  return {
    kind: model.kind,
    batch: model.predictBatch !== null,
    input_schema: schema('inputSchema'),
    output_schema: schema('outputSchema'),
  };
}

function parametersOf(spec) {
  const p = spec.parameters;
  return p !== null && typeof p === 'object' && !Array.isArray(p) ? p : null;
}

async function run(model, value, parameters) {
  return parameters !== null && model.takesParameters ? model.predict(value, parameters) : model.predict(value);
}

// ---------------------------------------------------------------- CPU limit and the gateway

// The CPU time one call (or batch) may use, as Python workers' re-armed RLIMIT_CPU does: Node
// cannot re-arm that limit per call, so a watchdog thread (its own event loop keeps running
// while a model's synchronous code holds this one) compares the process's CPU time with the
// armed budget and, past it, ends the worker with SIGXCPU, the signal the kernel would send.
const cpuBudget = new BigInt64Array(new SharedArrayBuffer(8)); // process CPU µs allowed; 0: none

const WATCHDOG = `
const { workerData } = require('worker_threads');
const budget = workerData.budget;
setInterval(() => {
  const allowed = Atomics.load(budget, 0);
  if (allowed === 0n) return;
  const used = process.cpuUsage();
  if (BigInt(used.user + used.system) > allowed) {
    process.stderr.write('algora worker: the call exceeded its CPU-time limit\\n');
    process.kill(process.pid, 'SIGXCPU');
  }
}, 50);
`;

let cpuLimitMicros = 0n;

function startCpuWatchdog(seconds) {
  if (!(seconds > 0)) return;
  cpuLimitMicros = BigInt(Math.ceil(seconds * 1e6));
  const { Worker } = require('worker_threads');
  new Worker(WATCHDOG, { eval: true, workerData: { budget: cpuBudget } }).unref();
}

async function withinCpuLimit(work) {
  if (cpuLimitMicros === 0n) return work();
  const used = process.cpuUsage();
  Atomics.store(cpuBudget, 0, BigInt(used.user + used.system) + cpuLimitMicros);
  try {
    return await work();
  } finally {
    Atomics.store(cpuBudget, 0, 0n);
  }
}

// Calls from inside models: a loopback port forwarded to the worker's private Unix socket to
// the gateway, byte for byte, as the Python runtime does (algora/runtime/gateway.py), so that
// fetch(), Algorithmia's and Algora's clients reach the gateway with the credential the gateway
// put in ALGORA_KEY and ALGORITHMIA_API_KEY.
function startGatewayForwarder(socketPath) {
  const net = require('net');
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  server.unref(); // a listening forwarder must not keep a finished worker alive
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      process.env.ALGORITHMIA_API = url;
      process.env.ALGORA_URL = url;
      process.env.ALGORITHM_QUEUE_READER_URL = url; // a model's POST /insights reports
      for (const name of ['NO_PROXY', 'no_proxy']) {
        const hosts = (process.env[name] || '').split(',').filter((h) => h.trim());
        process.env[name] = [...hosts, '127.0.0.1'].join(',');
      }
      resolve(url);
    });
  });
}

// ---------------------------------------------------------------- calls

// The CPU seconds (user and system) this process used since `since`, a process.cpuUsage().
function cpuSeconds(since) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

async function handleCall(model, header, payload) {
  const id = header.id;
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  let value;
  try {
    value = decodeCall(header, payload);
  } catch (err) {
    if (!(err instanceof InvalidPayload)) throw err;
    const error = { code: 'invalid_input', message: err.message, error_type: 'InvalidPayload' };
    return [{ type: 'error', id, error, stdout: '' }, Buffer.alloc(0)];
  }
  const capture = new Capture();
  let answer;
  try {
    answer = await captured(capture, () =>
      withinCpuLimit(async () => encodeAnswer(await run(model, value, parametersOf(header)), header)),
    );
  } catch (err) {
    const code = err instanceof NotSerializable ? 'result_not_serializable' : 'model_error';
    return [{ type: 'error', id, error: errorObject(code, err), stdout: capture.value() }, Buffer.alloc(0)];
  }
  const [contentType, body, described] = answer;
  const reply = {
    type: 'result',
    id,
    content_type: contentType,
    stdout: capture.value(),
    duration: Number(process.hrtime.bigint() - started) / 1e9,
    cpu: cpuSeconds(cpuStarted),
  };
  if (described !== null) reply.tensors = described;
  return [reply, body];
}

async function oneByOne(model, inputs, parameters) {
  const outcomes = [];
  for (let i = 0; i < inputs.length; i++) {
    try {
      outcomes.push([await run(model, inputs[i], parameters[i])]);
    } catch (err) {
      outcomes.push(errorObject('model_error', err));
    }
  }
  return outcomes;
}

async function runBatch(model, inputs, parameters) {
  const capture = new Capture();
  const outcomes = await captured(capture, async () => {
    const byOne = model.takesParameters && parameters.some((p) => p !== null);
    if (model.predictBatch === null || byOne) return oneByOne(model, inputs, parameters);
    try {
      const results = Array.from(await model.predictBatch(inputs));
      if (results.length !== inputs.length) {
        throw new Error(`predictBatch returned ${results.length} results for ${inputs.length} inputs`);
      }
      return results.map((r) => [r]);
    } catch (err) {
      // One bad input must not fail the other callers: each is tried on its own.
      if (inputs.length > 1) return oneByOne(model, inputs, parameters);
      return [errorObject('model_error', err)];
    }
  });
  const printed = capture.value();
  if (printed) process.stderr.write(printed); // not one caller's: it goes to the log
  return outcomes;
}

async function handleBatch(model, header, payload) {
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  const specs = header.items;
  if (!Array.isArray(specs) || !specs.every((s) => s !== null && typeof s === 'object' && !Array.isArray(s))) {
    const error = { code: 'protocol_error', message: 'call_batch needs an items list' };
    return [{ type: 'error', id: null, error }, Buffer.alloc(0)];
  }
  const replies = new Array(specs.length).fill(null);
  const inputs = [];
  const parameters = [];
  const positions = [];
  let offset = 0;
  specs.forEach((spec, index) => {
    const length = Number(spec.length || 0);
    const chunk = payload.subarray(offset, offset + length);
    offset += length;
    try {
      inputs.push(decodeCall(spec, chunk));
      parameters.push(parametersOf(spec));
      positions.push(index);
    } catch (err) {
      if (!(err instanceof InvalidPayload)) throw err;
      replies[index] = { id: spec.id, error: { code: 'invalid_input', message: err.message, error_type: 'InvalidPayload' } };
    }
  });
  const bodies = new Array(specs.length).fill(null);
  if (inputs.length) {
    const outcomes = await withinCpuLimit(() => runBatch(model, inputs, parameters));
    outcomes.forEach((outcome, position) => {
      const index = positions[position];
      const id = specs[index].id;
      if (!Array.isArray(outcome)) {
        replies[index] = { id, error: outcome };
        return;
      }
      try {
        const [contentType, body, described] = encodeAnswer(outcome[0], specs[index]);
        bodies[index] = body;
        replies[index] = { id, content_type: contentType, length: body.length, stdout: '' };
        if (described !== null) replies[index].tensors = described;
      } catch (err) {
        replies[index] = { id, error: errorObject('result_not_serializable', err) };
      }
    });
  }
  const items = replies.map((r) => r || { id: null });
  const body = Buffer.concat(bodies.filter((b) => b !== null));
  const duration = Number(process.hrtime.bigint() - started) / 1e9;
  return [{ type: 'batch_result', items, duration, cpu: cpuSeconds(cpuStarted) }, body];
}

async function serve(model) {
  const reader = new FrameReader(FD_IN);
  for (;;) {
    let frame;
    try {
      frame = await reader.read();
    } catch (err) {
      process.stderr.write(`algora worker: protocol stream broken: ${err.message}\n`);
      return 2;
    }
    if (frame === null) return 0;
    const [header, payload] = frame;
    const id = header.type === 'call_batch' || header.id === undefined ? null : header.id;
    let reply;
    try {
      if (header.type === 'call') reply = await handleCall(model, header, payload);
      else if (header.type === 'call_batch') reply = await handleBatch(model, header, payload);
      else if (header.type === 'shutdown') return 0;
      else {
        const error = { code: 'protocol_error', message: `unknown message type ${JSON.stringify(header.type)}` };
        reply = [{ type: 'error', id, error }, Buffer.alloc(0)];
      }
    } catch (err) {
      // A fault of the worker itself, not of the model: every call is still answered.
      const error = { code: 'protocol_error', message: `the worker failed: ${err && err.message}` };
      reply = [{ type: 'error', id, error }, Buffer.alloc(0)];
    }
    writeFrame(...reply);
  }
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(source|entrypoint|cpu-limit|gateway-socket)(?:=(.*))?$/.exec(argv[i]);
    if (!match) {
      process.stderr.write(`algora worker: ignoring unknown argument ${argv[i]}\n`);
      continue;
    }
    args[match[1]] = match[2] !== undefined ? match[2] : argv[++i];
  }
  if (!args.source || !args.entrypoint) {
    process.stderr.write(
      'usage: node worker.js --source DIR --entrypoint FILE[:ATTR] [--cpu-limit S] [--gateway-socket P]\n',
    );
    process.exit(2);
  }
  return args;
}

async function main() {
  process.umask(0o077);
  const args = parseArgs(process.argv.slice(2));
  sourceDir = path.resolve(args.source);
  startCpuWatchdog(Number(args['cpu-limit']));
  let model;
  try {
    if (args['gateway-socket']) await startGatewayForwarder(args['gateway-socket']);
    process.chdir(sourceDir);
    model = await loadModel(sourceDir, args.entrypoint);
  } catch (err) {
    const error = errorObject('model_load_failed', err);
    writeFrame({ type: 'load_error', error });
    process.stderr.write(error.stacktrace);
    process.exit(1);
  }
  // A model's stray rejection must not take the worker down between calls: log it.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`algora worker: unhandled rejection: ${errorObject('model_error', reason).stacktrace}`);
  });
  writeFrame({
    type: 'ready',
    pid: process.pid,
    protocol: PROTOCOL_VERSION,
    model: describe(model),
    load_seconds: Math.round(process.uptime() * 1e6) / 1e6,
  });
  process.exit(await serve(model));
}

main().catch((err) => {
  process.stderr.write(`algora worker: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
