/**
 * Errors raised by the SDK: one class per API error code, all subclasses of
 * {@link NullspaceError}. Each carries `code` (e.g. `"not_found"`), `message`, `status` (the
 * HTTP status, or `null` when no answer arrived) and `retryable`.
 *
 * Mistakes the SDK sees before sending a request are the built-in `TypeError` (wrong type) or
 * `RangeError` (bad value) instead.
 */

/** The error codes of the API (SPEC "Errors"). */
export type ErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "volume_in_use"
  | "payload_too_large"
  | "quota_exceeded"
  | "resource_exhausted"
  | "unavailable"
  | "internal";

/** Options of every error's constructor. */
export interface ErrorOptions {
  code?: string;
  status?: number | null;
  retryable?: boolean;
  cause?: unknown;
}

/** Base class of every error the server reports, or of a failed connection to it. */
export class NullspaceError extends Error {
  /** The code this class stands for. */
  static readonly defaultCode: string = "internal";
  /** The HTTP status the server answers with for that code. */
  static readonly defaultStatus: number | null = null;

  /** The API error code (`"not_found"`, `"quota_exceeded"`, ...). */
  readonly code: string;
  /** The HTTP status of the answer, or `null` when none was received. */
  readonly status: number | null;
  /** Whether repeating the same request may succeed. */
  readonly retryable: boolean;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const ctor = new.target as unknown as typeof NullspaceError;
    this.name = new.target.name;
    this.code = options.code ?? ctor.defaultCode;
    this.status = options.status === undefined ? ctor.defaultStatus : options.status;
    this.retryable = options.retryable ?? false;
  }
}

/** The request was malformed or a value was refused (`invalid_argument`, 400). */
export class InvalidArgumentError extends NullspaceError {
  static override readonly defaultCode = "invalid_argument";
  static override readonly defaultStatus: number | null = 400;
}
/** The API key is missing, unknown, expired or revoked (`unauthenticated`, 401). */
export class UnauthenticatedError extends NullspaceError {
  static override readonly defaultCode = "unauthenticated";
  static override readonly defaultStatus: number | null = 401;
}
/** The key is valid but may not do this (`permission_denied`, 403). */
export class PermissionDeniedError extends NullspaceError {
  static override readonly defaultCode = "permission_denied";
  static override readonly defaultStatus: number | null = 403;
}
/** No such volume, file, sandbox or upload for this tenant (`not_found`, 404). */
export class NotFoundError extends NullspaceError {
  static override readonly defaultCode = "not_found";
  static override readonly defaultStatus: number | null = 404;
}
/** The object to create already exists (`already_exists`, 409). */
export class AlreadyExistsError extends NullspaceError {
  static override readonly defaultCode = "already_exists";
  static override readonly defaultStatus: number | null = 409;
}
/** A precondition failed, e.g. a stale `ifMatch` etag or an edit count (`conflict`, 409). */
export class ConflictError extends NullspaceError {
  static override readonly defaultCode = "conflict";
  static override readonly defaultStatus: number | null = 409;
}
/** The volume is attached to a live sandbox; delete with `force` (`volume_in_use`, 409). */
export class VolumeInUseError extends NullspaceError {
  static override readonly defaultCode = "volume_in_use";
  static override readonly defaultStatus: number | null = 409;
}
/** The request body is larger than the server accepts (`payload_too_large`, 413). */
export class PayloadTooLargeError extends NullspaceError {
  static override readonly defaultCode = "payload_too_large";
  static override readonly defaultStatus: number | null = 413;
}
/** The write would take the volume past its cap; nothing changed (`quota_exceeded`, 507). */
export class QuotaExceededError extends NullspaceError {
  static override readonly defaultCode = "quota_exceeded";
  static override readonly defaultStatus: number | null = 507;
}
/** A tenant or server limit other than a volume's cap; the message names it (`resource_exhausted`, 429). */
export class ResourceExhaustedError extends NullspaceError {
  static override readonly defaultCode = "resource_exhausted";
  static override readonly defaultStatus: number | null = 429;
}
/** The server cannot answer now (`unavailable`, 503). Retryable. */
export class UnavailableError extends NullspaceError {
  static override readonly defaultCode = "unavailable";
  static override readonly defaultStatus: number | null = 503;
}
/** The server failed, or sent an answer the SDK cannot read (`internal`, 500). */
export class InternalError extends NullspaceError {
  static override readonly defaultCode = "internal";
  static override readonly defaultStatus: number | null = 500;
}
/** The server could not be reached, or the connection failed mid-request (`status` is `null`). */
export class APIConnectionError extends UnavailableError {
  static override readonly defaultStatus = null;
}

type ErrorClass = new (message: string, options?: ErrorOptions) => NullspaceError;

const BY_CODE: Record<ErrorCode, ErrorClass> = {
  invalid_argument: InvalidArgumentError,
  unauthenticated: UnauthenticatedError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  already_exists: AlreadyExistsError,
  conflict: ConflictError,
  volume_in_use: VolumeInUseError,
  payload_too_large: PayloadTooLargeError,
  quota_exceeded: QuotaExceededError,
  resource_exhausted: ResourceExhaustedError,
  unavailable: UnavailableError,
  internal: InternalError,
};

const BY_STATUS: Record<number, ErrorClass> = {
  400: InvalidArgumentError,
  401: UnauthenticatedError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  413: PayloadTooLargeError,
  429: ResourceExhaustedError,
  500: InternalError,
  502: UnavailableError,
  503: UnavailableError,
  504: UnavailableError,
  507: QuotaExceededError,
};

/** The error class of an API error code (falling back on the HTTP status). */
export function errorClassFor(code: string | null | undefined, status?: number | null): ErrorClass {
  if (code && Object.prototype.hasOwnProperty.call(BY_CODE, code)) return BY_CODE[code as ErrorCode];
  if (status != null) {
    const byStatus = BY_STATUS[status];
    if (byStatus) return byStatus;
    if (status >= 400 && status < 500) return InvalidArgumentError;
    if (status >= 500) return InternalError;
  }
  return NullspaceError;
}

/** Every error code and its class (for tests and for `instanceof` dispatch tables). */
export const ERROR_CLASSES: Readonly<Record<ErrorCode, ErrorClass>> = BY_CODE;
