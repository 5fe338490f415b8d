package dev.graft.compiler.kinds;

import dev.graft.compiler.diag.ErrorCode;

/**
 * A host has no site where an adapter kind could go; the message says what was looked for. The
 * error code is {@link ErrorCode#SITE_NOT_FOUND} unless the kind names its own, whose template
 * takes the same three arguments (kind, host, this message).
 */
public final class SiteException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final ErrorCode code;

  public SiteException(String message) {
    this(ErrorCode.SITE_NOT_FOUND, message);
  }

  public SiteException(ErrorCode code, String message) {
    super(message);
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }
}
