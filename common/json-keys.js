// Finding a key that a JSON object holds twice. JSON.parse keeps the last of two equal keys
// without a word; a safetensors header that names a tensor twice must be an error instead.
// Plain JavaScript that imports nothing: difftc's reader imports it, and every JS-facing
// artifact carries a copy of it (backends/common/template), so both refuse the same headers.

/**
 * The first key that some object in the valid JSON text `json` holds twice, compared as
 * decoded strings ("w" and "\u0077" are the same key); undefined when there is none.
 */
export function firstDuplicateKey(json) {
  // One set of keys per open object; null for an open array.
  const open = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      const keys = open[open.length - 1];
      if (keys) {
        let k = j + 1;
        while (json[k] === " " || json[k] === "\t" || json[k] === "\n" || json[k] === "\r") k++;
        if (json[k] === ":") {
          const key = JSON.parse(json.slice(i, j + 1));
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = j;
    } else if (c === "{") open.push(new Set());
    else if (c === "[") open.push(null);
    else if (c === "}" || c === "]") open.pop();
  }
  return undefined;
}
