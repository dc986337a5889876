/** The extension's version, sent in `hello`. A unit test checks it against package.json. */
export const EXTENSION_VERSION = '0.1.0';
