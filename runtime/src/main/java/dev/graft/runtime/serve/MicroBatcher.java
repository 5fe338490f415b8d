package dev.graft.runtime.serve;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Collects requests arriving from many threads into mixed batches for an {@link AdapterServer}:
 * a batch is run when it holds {@code maxRows} rows or its first request has waited {@code
 * maxDelay}, whichever comes first. A batch that fails as a whole (one request naming an adapter
 * that is not registered) is run again request by request, so each request gets its own answer
 * or error.
 */
public final class MicroBatcher implements AutoCloseable {
  private record Pending(AdapterServer.Request request, CompletableFuture<AdapterServer.Prediction> result) {
    int rows() {
      return request.inputs().values().iterator().next().length;
    }
  }

  private final AdapterServer server;
  private final long maxDelayNanos;
  private final int maxRows;
  private final BlockingQueue<Pending> queue = new LinkedBlockingQueue<>();
  private final Thread worker;
  private volatile boolean closed;

  /** Starts the batching thread. */
  public MicroBatcher(AdapterServer server, Duration maxDelay, int maxRows) {
    if (maxRows < 1 || maxDelay.isNegative()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "micro-batching needs maxRows >= 1 and maxDelay >= 0, got " + maxRows + " and " + maxDelay);
    }
    this.server = server;
    this.maxDelayNanos = maxDelay.toNanos();
    this.maxRows = maxRows;
    this.worker = new Thread(this::loop, "graft-micro-batcher");
    worker.setDaemon(true);
    worker.start();
  }

  /** Queues {@code request}; the future completes with its prediction or its error. */
  public CompletableFuture<AdapterServer.Prediction> submit(AdapterServer.Request request) {
    if (request.inputs().isEmpty()) {
      return CompletableFuture.failedFuture(new GraftException(RuntimeErrorCode.ARGUMENT, "a request has no inputs"));
    }
    CompletableFuture<AdapterServer.Prediction> f = new CompletableFuture<>();
    queue.add(new Pending(request, f));
    if (closed) {
      failPending();
    }
    return f;
  }

  private void loop() {
    while (!closed) {
      List<Pending> batch = new ArrayList<>();
      try {
        Pending first = queue.poll(100, TimeUnit.MILLISECONDS);
        if (first == null) {
          continue;
        }
        batch.add(first);
        int rows = first.rows();
        long deadline = System.nanoTime() + maxDelayNanos;
        while (rows < maxRows) {
          long left = deadline - System.nanoTime();
          Pending next = left <= 0 ? queue.poll() : queue.poll(left, TimeUnit.NANOSECONDS);
          if (next == null) {
            break;
          }
          batch.add(next);
          rows += next.rows();
        }
      } catch (InterruptedException e) {
        batch.forEach(p -> p.result().completeExceptionally(closedError()));
        break;
      }
      run(batch);
    }
    failPending();
  }

  private void run(List<Pending> batch) {
    try {
      List<AdapterServer.Prediction> out = server.run(batch.stream().map(Pending::request).toList());
      for (int i = 0; i < batch.size(); i++) {
        batch.get(i).result().complete(out.get(i));
      }
    } catch (RuntimeException e) {
      if (batch.size() == 1) {
        batch.get(0).result().completeExceptionally(e);
        return;
      }
      for (Pending p : batch) {
        try {
          p.result().complete(server.run(List.of(p.request())).get(0));
        } catch (RuntimeException alone) {
          p.result().completeExceptionally(alone);
        }
      }
    }
  }

  private void failPending() {
    for (Pending p; (p = queue.poll()) != null; ) {
      p.result().completeExceptionally(closedError());
    }
  }

  private static GraftException closedError() {
    return new GraftException(RuntimeErrorCode.CLOSED, "the micro-batcher is closed");
  }

  /** Stops the thread after the batch in flight; queued requests fail with {@code GRAFT-R008}. */
  @Override
  public void close() {
    closed = true;
    worker.interrupt();
    try {
      worker.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    failPending();
  }
}
