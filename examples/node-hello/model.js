'use strict';

// Greets whatever it is given: text gets text back, {"name": ...} gets JSON back.
async function apply(input) {
  if (typeof input === 'string') {
    console.log(`greeting ${input}`);
    return `Hello ${input}`;
  }
  if (input && typeof input.name === 'string') {
    return { greeting: `Hello ${input.name}`, runtime: `node ${process.version}` };
  }
  const error = new TypeError('send a name as text, or {"name": "..."}');
  error.error_type = 'InputError';
  throw error;
}

module.exports = { apply };
