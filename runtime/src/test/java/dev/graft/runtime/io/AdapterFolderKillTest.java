package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.graft.runtime.GraftException;
import dev.graft.spec.manifest.Parameter;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Finding 4 of issue 15: a child JVM saves two grafts' adapters alternately into one folder and is
 * killed at a random moment, 50 times; the folder must always load as exactly one of the two.
 */
class AdapterFolderKillTest {
  @TempDir Path root;

  /** Graft A: rank 2. */
  static PeftAdaptersTest.Store graftA() {
    return new PeftAdaptersTest.Store(PeftAdaptersTest.manifest(2), 0.5f);
  }

  /** Graft B: rank 3, other values. */
  static PeftAdaptersTest.Store graftB() {
    return new PeftAdaptersTest.Store(PeftAdaptersTest.manifest(3), -7f);
  }

  /** Loads {@code dir} into a fresh store like {@code like}; true when it loaded and equals {@code like}'s saved values. */
  private static boolean loadsAs(PeftAdaptersTest.Store like, Path dir) {
    PeftAdaptersTest.Store fresh = new PeftAdaptersTest.Store(like.manifest, 1000f);
    try {
      PeftAdapters.load(fresh, dir);
    } catch (GraftException e) {
      return false;
    }
    for (Parameter p : like.manifest.getParametersList()) {
      if (!p.getSaveKey().isEmpty()) {
        assertArrayEquals(like.values.get(p.getName()), fresh.values.get(p.getName()), 0f, p.getName());
      }
    }
    return true;
  }

  private List<String> siblings() throws Exception {
    try (Stream<Path> s = Files.list(root)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void finding4_killedWhileTwoGraftsAlternatelySaveTheFolderAlwaysLoadsAsOneOfThem() throws Exception {
    Path dir = root.resolve("adapter");
    PeftAdaptersTest.Store a = graftA();
    PeftAdaptersTest.Store b = graftB();
    PeftAdapters.save(a, dir);
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Random random = new Random(15);
    long start = System.nanoTime();
    int asA = 0;
    int asB = 0;
    int midSave = 0;
    for (int kill = 0; kill < 50; kill++) {
      Process child = new ProcessBuilder(java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp",
          System.getProperty("java.class.path"), AlternatingSaver.class.getName(), dir.toString())
          .redirectErrorStream(true).start();
      BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      String line = out.readLine();
      assertEquals("saving", line, "the child started saving");
      Thread.sleep(random.nextInt(150));
      child.destroyForcibly();
      assertTrue(child.waitFor(20, TimeUnit.SECONDS));

      List<String> left = siblings();
      midSave += left.size() > 1 || !left.contains("adapter") ? 1 : 0;
      boolean isA = loadsAs(a, dir);
      boolean isB = loadsAs(b, dir);
      if (isA == isB) {
        fail("after kill " + kill + " the folder loads as " + (isA ? "both grafts" : "neither graft") + "; "
            + siblings());
      }
      asA += isA ? 1 : 0;
      asB += isB ? 1 : 0;
      PeftAdaptersTest.Store next = kill % 2 == 0 ? a : b;
      PeftAdapters.save(next, dir);
      assertEquals(List.of("adapter"), siblings(), "no temporary or backup folder after the next save");
      try (Stream<Path> s = Files.list(dir)) {
        assertEquals(List.of(PeftAdapters.CONFIG_FILE, PeftAdapters.WEIGHTS_FILE),
            s.map(p -> p.getFileName().toString()).sorted().toList());
      }
      assertTrue(loadsAs(next, dir));
    }
    assertTrue(midSave > 0, "no kill landed inside a save, so the test showed nothing");
    System.out.println("kill test: " + midSave + " of 50 kills left a temporary or backup folder; loaded as A "
        + asA + ", as B " + asB);
    long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
    assertTrue(seconds <= 60, "50 kills took " + seconds + " s");
  }
}
