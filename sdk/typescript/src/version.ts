/** The SDK version (sent as the User-Agent). */
export const VERSION = "0.1.0";
