package dev.graft.spark.allreduce;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import java.io.DataOutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The ring all-reduce between threads over loopback: sums, identical bits, and coded failures from hostile peers. */
class RingAllReduceTest {
  private static final long SESSION = 0x5eed_0001L;
  private final ExecutorService pool = Executors.newCachedThreadPool();

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  private static List<InetSocketAddress> addresses(List<ServerSocket> servers) {
    return servers.stream().map(s -> new InetSocketAddress(InetAddress.getLoopbackAddress(), s.getLocalPort())).toList();
  }

  /** Runs an all-reduce of {@code inputs} (one per replica) on threads; returns each replica's result. */
  private List<float[]> run(List<float[]> inputs, int times) throws Exception {
    int n = inputs.size();
    List<ServerSocket> servers = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      servers.add(RingAllReduce.listen());
    }
    List<InetSocketAddress> peers = addresses(servers);
    List<Future<float[]>> results = new ArrayList<>();
    for (int r = 0; r < n; r++) {
      int rank = r;
      results.add(pool.submit(() -> {
        try (RingAllReduce ring = RingAllReduce.connect(rank, peers, servers.get(rank), SESSION, 10_000)) {
          float[] data = inputs.get(rank).clone();
          for (int t = 0; t < times; t++) {
            ring.allReduce(data);
          }
          return data;
        }
      }));
    }
    List<float[]> out = new ArrayList<>();
    for (Future<float[]> f : results) {
      out.add(f.get(60, TimeUnit.SECONDS));
    }
    return out;
  }

  @Test
  void everyReplicaGetsTheSameSum() throws Exception {
    Random random = new Random(5);
    for (int n : new int[] {1, 2, 3, 5}) {
      // Lengths not divisible by n, and shorter than n.
      for (int length : new int[] {1, 7, 10_001}) {
        List<float[]> inputs = new ArrayList<>();
        for (int r = 0; r < n; r++) {
          float[] v = new float[length];
          for (int i = 0; i < length; i++) {
            v[i] = (float) random.nextGaussian();
          }
          inputs.add(v);
        }
        List<float[]> got = run(inputs, 1);
        for (int i = 0; i < length; i++) {
          double sum = 0;
          for (float[] v : inputs) {
            sum += v[i];
          }
          assertEquals(sum, got.get(0)[i], 1e-5 * Math.max(1, Math.abs(sum)), "n=" + n + " length=" + length);
        }
        for (float[] g : got) {
          assertArrayEquals(got.get(0), g, 0f, "replicas hold the same bits (n=" + n + ")");
        }
      }
    }
  }

  @Test
  void repeatedOperationsStayInStep() throws Exception {
    List<float[]> inputs = List.of(new float[] {1, 2, 3}, new float[] {10, 20, 30}, new float[] {100, 200, 300});
    // Each all-reduce multiplies the sum by 3 after the first: 111·3² after three.
    List<float[]> got = run(inputs, 3);
    for (float[] g : got) {
      assertArrayEquals(new float[] {999, 1998, 2997}, g, 0f);
    }
  }

  /** A peer that connects with a wrong hello is refused; the replica waits for the real one. */
  @Test
  void aStrangerIsRefusedAndTheRingStillForms() throws Exception {
    List<ServerSocket> servers = List.of(RingAllReduce.listen(), RingAllReduce.listen());
    List<InetSocketAddress> peers = addresses(servers);
    try (Socket stranger = new Socket(InetAddress.getLoopbackAddress(), servers.get(0).getLocalPort())) {
      DataOutputStream out = new DataOutputStream(stranger.getOutputStream());
      out.writeInt(RingAllReduce.MAGIC);
      out.writeLong(SESSION + 1);
      out.writeInt(1);
      out.flush();
      Future<float[]> zero = pool.submit(() -> {
        try (RingAllReduce ring = RingAllReduce.connect(0, peers, servers.get(0), SESSION, 10_000)) {
          float[] d = {1, 2};
          ring.allReduce(d);
          return d;
        }
      });
      Thread.sleep(300);
      try (RingAllReduce ring = RingAllReduce.connect(1, peers, servers.get(1), SESSION, 10_000)) {
        float[] d = {3, 4};
        ring.allReduce(d);
        assertArrayEquals(new float[] {4, 6}, d, 0f);
      }
      assertArrayEquals(new float[] {4, 6}, zero.get(30, TimeUnit.SECONDS), 0f);
    }
  }

  /**
   * A "previous replica" that says hello correctly, then sends a frame claiming a huge float count:
   * refused before anything is allocated, as GRAFT-R161.
   */
  @Test
  void aFrameOfTheWrongLengthIsACodedError() throws Exception {
    ServerSocket server = RingAllReduce.listen();
    ServerSocket fakeNext = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
    List<InetSocketAddress> peers = List.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()),
        new InetSocketAddress(InetAddress.getLoopbackAddress(), fakeNext.getLocalPort()));
    Future<?> hostile = pool.submit(() -> {
      try (Socket s = new Socket(InetAddress.getLoopbackAddress(), server.getLocalPort()); fakeNext) {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(RingAllReduce.MAGIC);
        out.writeLong(SESSION);
        out.writeInt(1);
        out.writeInt(RingAllReduce.MAGIC);
        out.writeInt(1);
        out.writeLong(1);
        out.writeByte(1);
        out.writeInt(0);
        out.writeInt(Integer.MAX_VALUE);
        out.flush();
        Socket accepted = fakeNext.accept();
        Thread.sleep(5_000);
        accepted.close();
      }
      return null;
    });
    try (RingAllReduce ring = RingAllReduce.connect(0, peers, server, SESSION, 5_000)) {
      GraftException e = assertThrows(GraftException.class, () -> ring.allReduce(new float[10]));
      assertEquals("GRAFT-R161", e.getCode());
      assertTrue(e.getMessage().contains("2147483647 floats") && e.getMessage().contains("replica 1"), e.getMessage());
    }
    hostile.cancel(true);
  }

  /** A previous replica that never sends: the read times out as GRAFT-R161 naming the operation. */
  @Test
  void aSilentPeerTimesOut() throws Exception {
    ServerSocket server = RingAllReduce.listen();
    ServerSocket fakeNext = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
    List<InetSocketAddress> peers = List.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()),
        new InetSocketAddress(InetAddress.getLoopbackAddress(), fakeNext.getLocalPort()));
    Future<?> silent = pool.submit(() -> {
      try (Socket s = new Socket(InetAddress.getLoopbackAddress(), server.getLocalPort()); fakeNext) {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(RingAllReduce.MAGIC);
        out.writeLong(SESSION);
        out.writeInt(1);
        out.flush();
        Socket accepted = fakeNext.accept();
        Thread.sleep(10_000);
        accepted.close();
      }
      return null;
    });
    long t0 = System.nanoTime();
    try (RingAllReduce ring = RingAllReduce.connect(0, peers, server, SESSION, 1_000)) {
      GraftException e = assertThrows(GraftException.class, () -> ring.allReduce(new float[4]));
      assertEquals("GRAFT-R161", e.getCode());
      assertTrue(e.getMessage().contains("within 1000 ms") && e.getMessage().contains("operation 1"), e.getMessage());
    }
    assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(8));
    silent.cancel(true);
  }

  @Test
  void noPeerIsACodedErrorAfterTheTimeout() {
    ServerSocket server = RingAllReduce.listen();
    ServerSocket other = RingAllReduce.listen();
    List<InetSocketAddress> peers = addresses(List.of(server, other));
    GraftException e = assertThrows(GraftException.class, () -> RingAllReduce.connect(0, peers, server, SESSION, 500));
    assertEquals("GRAFT-R161", e.getCode());
    assertTrue(e.getMessage().contains("replica 1 did not connect within 500 ms"), e.getMessage());
  }
}
