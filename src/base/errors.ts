// The user-facing error type, at the base of every layer (no platform imports: the browser build uses it too).

/** Error meant to be shown to the user as-is: one line saying what is wrong, where (file/key) and what was expected. */
export class CtsError extends Error {
  /** Creates the error; newlines are collapsed so the message always stays on one line. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message.replace(/\s*\n\s*/g, ' '), options);
    this.name = 'CtsError';
  }
}
