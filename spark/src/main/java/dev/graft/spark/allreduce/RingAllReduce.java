package dev.graft.spark.allreduce;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.jspecify.annotations.Nullable;

/**
 * A ring all-reduce (sum) of float vectors between the replicas of a data-parallel stage, over
 * plain TCP: replica r connects to replica r+1 and accepts a connection from replica r-1 (mod n).
 * One all-reduce is a reduce-scatter then an all-gather over n chunks, 2·(n-1) frames each way per
 * replica, so each replica sends and receives {@code 2·(n-1)/n} of the vector whatever n is.
 *
 * <p>Every chunk's sum is formed once, in ring order, by the replica that ends up holding it, and
 * copied as is to the others: every replica gets the same bits.
 *
 * <p>Peers are not trusted. A connection opens with a hello (magic, the stage's session token, the
 * sender's replica index); connections with a wrong hello are closed and waited past. Each frame
 * carries the magic, the sender, the operation number, the phase and round, and its float count,
 * all checked before its payload is read, the count against the exact length expected (so a
 * hostile length allocates nothing). Reads and writes time out. Every failure is a {@code
 * GRAFT-R161} {@link GraftException} naming the peer and the operation.
 */
public final class RingAllReduce implements AutoCloseable {
  /** "GRFT": the first int of every hello and frame. */
  public static final int MAGIC = 0x47524654;

  /** The most floats one all-reduce takes (1 GiB of payload). */
  public static final int MAX_FLOATS = 1 << 28;

  private static final byte REDUCE = 1;
  private static final byte GATHER = 2;

  private final int rank;
  private final int size;
  private final int timeoutMs;
  private final @Nullable Socket next;
  private final @Nullable Socket previous;
  private final @Nullable DataOutputStream out;
  private final @Nullable DataInputStream in;
  private final @Nullable ExecutorService sender;
  private final String previousName;
  private final String nextName;
  private long operation;
  private long bytesSent;
  private ByteBuffer sendBuffer = ByteBuffer.allocate(0);
  private ByteBuffer receiveBuffer = ByteBuffer.allocate(0);

  private RingAllReduce(int rank, int size, int timeoutMs, @Nullable Socket next, @Nullable Socket previous)
      throws IOException {
    this.rank = rank;
    this.size = size;
    this.timeoutMs = timeoutMs;
    this.next = next;
    this.previous = previous;
    this.previousName = "replica " + Math.floorMod(rank - 1, size)
        + (previous == null ? "" : " (" + previous.getRemoteSocketAddress() + ")");
    this.nextName = "replica " + Math.floorMod(rank + 1, size)
        + (next == null ? "" : " (" + next.getRemoteSocketAddress() + ")");
    this.out = next == null ? null : new DataOutputStream(new BufferedOutputStream(next.getOutputStream(), 1 << 16));
    this.in = previous == null ? null : new DataInputStream(new BufferedInputStream(previous.getInputStream(), 1 << 16));
    this.sender = next == null ? null : Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "graft-allreduce-send-" + rank);
      t.setDaemon(true);
      return t;
    });
  }

  /** A server socket on an ephemeral port of all interfaces, to advertise before {@link #connect}. */
  public static ServerSocket listen() {
    try {
      ServerSocket s = new ServerSocket();
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress(0), 8);
      return s;
    } catch (IOException e) {
      throw failure("cannot listen for the replicas' connections: " + e.getMessage(), e);
    }
  }

  /**
   * Joins the ring of {@code peers} (every replica's advertised address, in replica order) as
   * replica {@code rank}: connects to the next replica, accepts the previous one on {@code server}
   * (closed here once accepted), each checked by its hello.
   *
   * @param session a token every replica of this stage (and attempt) shares, so a connection from
   *     another stage or a stranger is refused
   * @param timeoutMs how long to wait for a connection, a hello, or any frame
   */
  public static RingAllReduce connect(int rank, List<InetSocketAddress> peers, ServerSocket server, long session,
      int timeoutMs) {
    int size = peers.size();
    if (rank < 0 || rank >= size || timeoutMs <= 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "replica " + rank + " of " + size + " with timeout " + timeoutMs + " ms is not a ring position");
    }
    try (server) {
      if (size == 1) {
        return new RingAllReduce(rank, 1, timeoutMs, null, null);
      }
      Socket next = connectNext(peers.get((rank + 1) % size), rank, session, timeoutMs);
      Socket previous;
      try {
        previous = acceptPrevious(server, Math.floorMod(rank - 1, size), session, timeoutMs);
      } catch (RuntimeException e) {
        closeQuietly(next);
        throw e;
      }
      return new RingAllReduce(rank, size, timeoutMs, next, previous);
    } catch (IOException e) {
      throw failure("replica " + rank + " cannot join the ring: " + e.getMessage(), e);
    }
  }

  private static Socket connectNext(InetSocketAddress address, int rank, long session, int timeoutMs) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    IOException last = null;
    while (System.nanoTime() < deadline) {
      Socket s = new Socket();
      try {
        s.setTcpNoDelay(true);
        s.connect(address, timeoutMs);
        s.setSoTimeout(timeoutMs);
        DataOutputStream hello = new DataOutputStream(s.getOutputStream());
        hello.writeInt(MAGIC);
        hello.writeLong(session);
        hello.writeInt(rank);
        hello.flush();
        return s;
      } catch (IOException e) {
        closeQuietly(s);
        last = e;
        sleep(50);
      }
    }
    throw failure("replica " + rank + " could not connect to the next replica at " + address + " within "
        + timeoutMs + " ms" + (last == null ? "" : ": " + last.getMessage()), last);
  }

  private static Socket acceptPrevious(ServerSocket server, int expected, long session, int timeoutMs)
      throws IOException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    String refused = "";
    while (true) {
      int left = (int) TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
      if (left <= 0) {
        throw failure("replica " + expected + " did not connect within " + timeoutMs + " ms" + refused, null);
      }
      server.setSoTimeout(left);
      Socket s;
      try {
        s = server.accept();
      } catch (SocketTimeoutException e) {
        continue;
      }
      try {
        s.setTcpNoDelay(true);
        s.setSoTimeout(Math.max(1, left));
        DataInputStream hello = new DataInputStream(s.getInputStream());
        int magic = hello.readInt();
        long token = magic == MAGIC ? hello.readLong() : 0;
        int from = magic == MAGIC ? hello.readInt() : -1;
        if (magic == MAGIC && token == session && from == expected) {
          s.setSoTimeout(timeoutMs);
          return s;
        }
        refused = "; refused a connection from " + s.getRemoteSocketAddress() + " (magic 0x" + Integer.toHexString(magic)
            + (magic == MAGIC ? ", " + (token == session ? "replica " + from : "another session") : "") + ")";
      } catch (IOException e) {
        refused = "; refused a connection from " + s.getRemoteSocketAddress() + " (" + e.getMessage() + ")";
      }
      closeQuietly(s);
    }
  }

  /** Replica index in the ring. */
  public int rank() {
    return rank;
  }

  /** Number of replicas. */
  public int size() {
    return size;
  }

  /** Payload and header bytes this replica has sent so far. */
  public long bytesSent() {
    return bytesSent;
  }

  /**
   * Replaces {@code data} by the element-wise sum of every replica's {@code data} (the same length on
   * each), the same bits on every replica.
   */
  public void allReduce(float[] data) {
    if (data.length > MAX_FLOATS) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "an all-reduce takes at most " + MAX_FLOATS + " floats, got " + data.length);
    }
    operation++;
    if (size == 1) {
      return;
    }
    for (int round = 0; round < size - 1; round++) {
      int send = Math.floorMod(rank - round, size);
      int receive = Math.floorMod(rank - round - 1, size);
      float[] got = exchange(data, REDUCE, round, send, receive);
      int from = start(data.length, receive);
      for (int i = 0; i < got.length; i++) {
        data[from + i] += got[i];
      }
    }
    for (int round = 0; round < size - 1; round++) {
      int send = Math.floorMod(rank + 1 - round, size);
      int receive = Math.floorMod(rank - round, size);
      float[] got = exchange(data, GATHER, round, send, receive);
      System.arraycopy(got, 0, data, start(data.length, receive), got.length);
    }
  }

  private int start(int length, int chunk) {
    return (int) ((long) length * chunk / size);
  }

  /** Sends chunk {@code send} of {@code data} to the next replica while receiving chunk {@code receive} from the previous. */
  private float[] exchange(float[] data, byte phase, int round, int send, int receive) {
    int sendFrom = start(data.length, send);
    int sendCount = start(data.length, send + 1) - sendFrom;
    int receiveCount = start(data.length, receive + 1) - start(data.length, receive);
    long op = operation;
    Future<?> sent = sender.submit(() -> {
      writeFrame(op, phase, round, data, sendFrom, sendCount);
      return null;
    });
    float[] got;
    try {
      got = readFrame(op, phase, round, receiveCount);
    } catch (RuntimeException e) {
      sent.cancel(true);
      throw e;
    }
    try {
      sent.get(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      sent.cancel(true);
      throw failure(nextName + " did not take operation " + op + "'s frame within " + timeoutMs + " ms", e);
    } catch (ExecutionException e) {
      throw failure("cannot send operation " + op + "'s frame to " + nextName + ": " + e.getCause().getMessage(),
          e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw failure("interrupted while sending to " + nextName, e);
    }
    return got;
  }

  private void writeFrame(long op, byte phase, int round, float[] data, int from, int count) throws IOException {
    if (sendBuffer.capacity() < count * 4) {
      sendBuffer = ByteBuffer.allocate(count * 4).order(ByteOrder.LITTLE_ENDIAN);
    }
    ByteBuffer b = sendBuffer.clear().order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(data, from, count);
    out.writeInt(MAGIC);
    out.writeInt(rank);
    out.writeLong(op);
    out.writeByte(phase);
    out.writeInt(round);
    out.writeInt(count);
    out.write(b.array(), 0, count * 4);
    out.flush();
    bytesSent += 25L + count * 4L;
  }

  private float[] readFrame(long op, byte phase, int round, int expected) {
    String what = "operation " + op + " (" + (phase == REDUCE ? "reduce-scatter" : "all-gather") + " round " + round
        + ")";
    try {
      int magic = in.readInt();
      int from = in.readInt();
      long gotOp = in.readLong();
      byte gotPhase = in.readByte();
      int gotRound = in.readInt();
      int count = in.readInt();
      int previousRank = Math.floorMod(rank - 1, size);
      if (magic != MAGIC || from != previousRank || gotOp != op || gotPhase != phase || gotRound != round
          || count != expected) {
        throw failure(previousName + " sent a frame that is not " + what + " of " + expected + " floats: magic 0x"
            + Integer.toHexString(magic) + ", sender " + from + ", operation " + gotOp + ", phase " + gotPhase
            + ", round " + gotRound + ", " + count + " floats", null);
      }
      if (receiveBuffer.capacity() < count * 4) {
        receiveBuffer = ByteBuffer.allocate(count * 4);
      }
      in.readFully(receiveBuffer.array(), 0, count * 4);
      float[] got = new float[count];
      ByteBuffer.wrap(receiveBuffer.array(), 0, count * 4).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(got);
      return got;
    } catch (SocketTimeoutException e) {
      throw failure(previousName + " sent nothing for " + what + " within " + timeoutMs + " ms", e);
    } catch (EOFException e) {
      throw failure(previousName + " closed its connection before " + what, e);
    } catch (IOException e) {
      throw failure("cannot read " + what + " from " + previousName + ": " + e.getMessage(), e);
    }
  }

  private static GraftException failure(String message, @Nullable Throwable cause) {
    return new GraftException(RuntimeErrorCode.ALL_REDUCE, message, cause);
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw failure("interrupted while connecting to the ring", e);
    }
  }

  private static void closeQuietly(@Nullable AutoCloseable c) {
    try {
      if (c != null) {
        c.close();
      }
    } catch (Exception ignored) {
      // closing after a failure: the failure is what is reported
    }
  }

  @Override
  public void close() {
    if (sender != null) {
      sender.shutdownNow();
    }
    closeQuietly(next);
    closeQuietly(previous);
  }
}
