// Types of weights.js (plain JavaScript, so that artifacts can embed it).

/** A tensor's name, dtype and shape, as a model declares a param or a file holds a tensor ("f64", "i64": file dtypes no model has). */
export interface TensorEntry {
  name: string;
  dtype: string;
  shape: readonly number[];
}

/** How a checkpoint's names map to the model's. */
export interface WeightsBindingOptions {
  /** Stripped from the names that start with it (`model.` for a Hugging Face checkpoint). */
  prefix?: string;
  /** File name -> model name, for names that differ otherwise; applied before the prefix. */
  rename?: Readonly<Record<string, string>>;
  /** Tensors the model does not use are ignored instead of refused. */
  allowUnused?: boolean;
}

export interface WeightsBinding {
  /** The file's tensor name for each param, when every problem list is empty. */
  sources: Map<string, string>;
  /** "bf16 to f32" -> how many tensors. */
  conversions: Map<string, number>;
  /** One line per kind of problem (missing, unused, mismatched, twice); empty when the file binds. */
  problems: string[];
  counts: { missing: number; unused: number; mismatched: number };
  /** What would fix it, when that can be guessed. */
  hint?: string;
}

export function bindWeights(params: readonly TensorEntry[], tensors: readonly TensorEntry[], options?: WeightsBindingOptions): WeightsBinding;
export function bindingSummary(binding: WeightsBinding, file: string, model: string): string;
export function conversionNote(binding: WeightsBinding, file: string): string | undefined;
