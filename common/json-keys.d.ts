/** The first key that some object in the valid JSON text `json` holds twice, or undefined. */
export function firstDuplicateKey(json: string): string | undefined;
