package dev.graft.runtime.session;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs ONNX Runtime's native set-up (the environment, each session) on a fresh thread with a
 * {@value #STACK_MIB} MiB stack. On Spark executors, opening a graft on a task thread killed the JVM
 * in native code (SIGSEGV, exit code 139, no Java error), as it did on a JVM's main thread with a
 * few kB more on the command line; {@code -Xss16m} removed it, and so does this class: the spark
 * module's local-cluster tests run executors with Java's default stacks and pass, and with this class
 * bypassed every executor dies with exit code 139. The exact native cause is not known (a test JVM
 * opens a graft on a 256 KiB thread without trouble), so every place in the runtime that creates an
 * ONNX Runtime session goes through {@link #call}, and callers on any thread are safe. Runs on an
 * open session stay on the caller's thread.
 */
public final class NativeStack {
  /** The stack of the set-up thread, MiB (reserved address space; only what is touched is committed). */
  public static final long STACK_MIB = 64;

  private static final ThreadLocal<Boolean> ON_LARGE_STACK = ThreadLocal.withInitial(() -> false);

  /** A piece of native set-up that may throw {@code E}. */
  @FunctionalInterface
  public interface Call<T, E extends Exception> {
    T call() throws E;
  }

  private NativeStack() {}

  /**
   * {@code body}'s result, computed on a thread with a {@value #STACK_MIB} MiB stack (on this thread
   * when it is one already); what {@code body} throws is thrown here, unchanged.
   */
  public static <T, E extends Exception> T call(String what, Call<T, E> body) throws E {
    if (ON_LARGE_STACK.get()) {
      return body.call();
    }
    AtomicReference<T> result = new AtomicReference<>();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    Thread thread = new Thread(null, () -> {
      ON_LARGE_STACK.set(true);
      try {
        result.set(body.call());
      } catch (Throwable t) {
        failure.set(t);
      }
    }, "graft-native-setup", STACK_MIB << 20);
    thread.setDaemon(true);
    thread.start();
    try {
      thread.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "interrupted while " + what, e);
    }
    Throwable t = failure.get();
    if (t != null) {
      throw NativeStack.<E>rethrow(t);
    }
    return result.get();
  }

  @SuppressWarnings("unchecked")
  private static <E extends Exception> E rethrow(Throwable t) throws E {
    if (t instanceof Error e) {
      throw e;
    }
    throw (E) t;
  }
}
