package dev.graft.dsl.adapter;

/** A host has no site where an adapter kind could go; the message says what was looked for. */
public final class SiteException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public SiteException(String message) {
    super(message);
  }
}
