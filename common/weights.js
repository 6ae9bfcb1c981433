// How a checkpoint's tensors bind to a model's params, written once for the compiler (CLI and
// API) and for every JS-facing artifact's load(), which embeds this file (without `export`).
// PyTorch's load_state_dict(strict=True) is the model users know: every param must be found,
// every tensor must be used, shapes must agree, and float dtypes convert to the param's dtype.
// Plain JavaScript, typed by weights.d.ts, so that artifacts can carry it as it is.

const FLOAT_DTYPES = ["f32", "f16", "bf16", "f64"];
const INTEGER_DTYPES = ["i32", "i8", "u8", "i64"];

/** How many names a listing shows before it says how many more there are. */
const LISTED = 8;

function shapeText(shape) {
  return "[" + shape.join(", ") + "]";
}

function listed(items) {
  return items.slice(0, LISTED).join(", ") + (items.length > LISTED ? ", ... (" + (items.length - LISTED) + " more)" : "");
}

/** Whether a tensor of dtype `from` may load into a param of dtype `to`: floats into floats, integers into integers (range-checked when copied). */
function convertible(from, to) {
  if (from === to) return true;
  if (FLOAT_DTYPES.includes(from)) return FLOAT_DTYPES.includes(to);
  return INTEGER_DTYPES.includes(from) && INTEGER_DTYPES.includes(to);
}

/**
 * The model name of each tensor in the file: its `rename` entry, else its name without
 * `prefix` when it starts with it, else its name as it is (so a Hugging Face checkpoint's
 * `lm_head.weight` still binds beside its `model.`-prefixed layers).
 */
function modelName(name, options) {
  if (options.rename && Object.prototype.hasOwnProperty.call(options.rename, name)) return options.rename[name];
  if (options.prefix && name.startsWith(options.prefix)) return name.slice(options.prefix.length);
  return name;
}

/**
 * Binds `tensors` ({ name, dtype, shape } of each tensor in the file) to `params` (the model's,
 * likewise). Returns the tensor name for each param and the dtype conversions needed, or the
 * problems: missing params, unused tensors (allowed with `allowUnused`), two tensors for one
 * param, shapes or dtypes that differ.
 */
export function bindWeights(params, tensors, options = {}) {
  const byModelName = new Map();
  const duplicated = [];
  // Tensors listed already (as naming a param twice) are not listed again as unused.
  const used = new Set();
  for (const t of tensors) {
    const name = modelName(t.name, options);
    const prior = byModelName.get(name);
    if (prior) {
      duplicated.push(prior.name + " and " + t.name + " both name " + name);
      used.add(t.name);
    } else byModelName.set(name, t);
  }
  const sources = new Map();
  const conversions = new Map();
  const missing = [];
  const mismatched = [];
  for (const p of params) {
    const t = byModelName.get(p.name);
    if (!t) {
      missing.push(p.name);
      continue;
    }
    used.add(t.name);
    if (shapeText(t.shape) !== shapeText(p.shape) || !convertible(t.dtype, p.dtype)) {
      mismatched.push((t.name === p.name ? p.name : t.name + " (" + p.name + ")") + " is " + t.dtype + shapeText(t.shape) + ", the model's is " + p.dtype + shapeText(p.shape));
      continue;
    }
    sources.set(p.name, t.name);
    if (t.dtype !== p.dtype) {
      const key = t.dtype + " to " + p.dtype;
      conversions.set(key, (conversions.get(key) || 0) + 1);
    }
  }
  const unused = tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  const problems = [];
  if (missing.length) problems.push("missing: " + listed(missing));
  if (unused.length && !options.allowUnused) problems.push("unused: " + listed(unused));
  if (mismatched.length) problems.push("mismatched: " + listed(mismatched));
  if (duplicated.length) problems.push("twice: " + listed(duplicated));
  const hint = problems.length ? prefixHint(missing, unused, options) : undefined;
  return { sources, conversions, problems, counts: { missing: missing.length, unused: options.allowUnused ? 0 : unused.length, mismatched: mismatched.length + duplicated.length }, hint };
}

/** When the unused names are the missing ones behind a common prefix, the option that binds them. */
function prefixHint(missing, unused, options) {
  const counts = new Map();
  for (const name of unused) {
    const p = missing.find((m) => name.endsWith("." + m));
    if (p) {
      const prefix = name.slice(0, name.length - p.length);
      counts.set(prefix, (counts.get(prefix) || 0) + 1);
    }
  }
  const best = [...counts].sort((a, b) => b[1] - a[1])[0];
  if (best && best[0] !== options.prefix) return "the file's names carry the prefix '" + best[0] + "': give it as the weights prefix (--weights-prefix " + best[0] + ")";
  if (unused.length && !options.allowUnused) return "to load a checkpoint that holds more than the model uses, allow unused tensors (--allow-unused)";
  return undefined;
}

/** The one-line summary of a failed binding, for an error's first line. */
export function bindingSummary(binding, file, model) {
  const parts = [];
  const { missing, unused, mismatched } = binding.counts;
  if (missing) parts.push(missing + " param" + (missing === 1 ? "" : "s") + " missing");
  if (unused) parts.push(unused + " tensor" + (unused === 1 ? "" : "s") + " unused");
  if (mismatched) parts.push(mismatched + " mismatched");
  return file + " does not match model " + model + ": " + parts.join(", ");
}

/** The note said once on load when tensors changed dtype, or undefined when none did. */
export function conversionNote(binding, file) {
  if (binding.conversions.size === 0) return undefined;
  const parts = [...binding.conversions].map(([kind, n]) => n + " tensor" + (n === 1 ? "" : "s") + " from " + kind);
  return file + ": converted " + parts.join(", ") + " (as PyTorch's load_state_dict does)";
}
