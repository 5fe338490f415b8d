package dev.graft.runtime.session;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;

/**
 * The open/closed state of an adapter model and the read-write lock that keeps its native
 * resources alive while they are in use: calls that only read the state (inference, reading or
 * saving parameters) share the read lock and run concurrently; calls that change it (a training
 * step, setting or loading parameters, switching adapters) and {@link #close} take the write lock,
 * so they wait for the runs in flight and exclude each other. Once closed, every guarded call fails
 * with {@link RuntimeErrorCode#CLOSED}.
 */
public final class Lifecycle {
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final String what;
  private volatile boolean closed;

  /** {@code what} names the resource in the error of a call after close, e.g. "the adapter model". */
  public Lifecycle(String what) {
    this.what = what;
  }

  /** Runs {@code body} under the read lock, alongside other readers, once the resource is checked to be open. */
  public <T> T read(Supplier<T> body) {
    return guarded(lock.readLock(), body);
  }

  /** Runs {@code body} under the read lock, once the resource is checked to be open. */
  public void read(Runnable body) {
    guarded(lock.readLock(), asSupplier(body));
  }

  /** Runs {@code body} under the write lock, alone, once the resource is checked to be open. */
  public <T> T write(Supplier<T> body) {
    return guarded(lock.writeLock(), body);
  }

  /** Runs {@code body} under the write lock, alone, once the resource is checked to be open. */
  public void write(Runnable body) {
    guarded(lock.writeLock(), asSupplier(body));
  }

  /** Whether {@link #close} has run. */
  public boolean isClosed() {
    return closed;
  }

  /**
   * Closes the resource: waits for every guarded call in flight to return, then runs {@code
   * release} once; later calls, and calls that were waiting, fail with {@code CLOSED}. Closing
   * again does nothing.
   */
  public void close(Runnable release) {
    if (closed) {
      return;
    }
    Lock w = lock.writeLock();
    w.lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      release.run();
    } finally {
      w.unlock();
    }
  }

  private <T> T guarded(Lock l, Supplier<T> body) {
    l.lock();
    try {
      if (closed) {
        throw new GraftException(RuntimeErrorCode.CLOSED, what + " is closed");
      }
      return body.get();
    } finally {
      l.unlock();
    }
  }

  private static Supplier<Void> asSupplier(Runnable body) {
    return () -> {
      body.run();
      return null;
    };
  }
}
