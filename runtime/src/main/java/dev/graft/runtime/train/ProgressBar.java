package dev.graft.runtime.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * Training progress on a terminal: one line rewritten in place ({@code \r}) when interactive,
 * otherwise a plain line about every tenth of an epoch.
 */
final class ProgressBar {
  private static final int WIDTH = 24;

  private final PrintStream out;
  private final boolean interactive;
  private long lastDraw;
  private int lastLineLength;

  ProgressBar(PrintStream out, boolean interactive) {
    this.out = out;
    this.interactive = interactive;
  }

  static boolean isTerminal() {
    return System.console() != null;
  }

  void update(int epoch, int epochs, int step, int steps, double meanLoss, double examplesPerSecond) {
    if (interactive) {
      long now = System.nanoTime();
      if (step != steps && now - lastDraw < 100_000_000L) {
        return;
      }
      lastDraw = now;
      int filled = (int) ((long) WIDTH * step / Math.max(1, steps));
      String bar = "=".repeat(filled) + (filled < WIDTH ? ">" + " ".repeat(WIDTH - filled - 1) : "");
      String line = String.format(
          Locale.ROOT, "epoch %d/%d [%s] %d/%d loss %.4f %.1f ex/s", epoch, epochs, bar, step, steps, meanLoss,
          examplesPerSecond);
      int pad = Math.max(0, lastLineLength - line.length());
      out.print("\r" + line + " ".repeat(pad));
      lastLineLength = line.length();
      out.flush();
    } else {
      int every = Math.max(1, steps / 10);
      if (step % every == 0 || step == steps) {
        out.println(String.format(
            Locale.ROOT, "epoch %d/%d step %d/%d loss %.4f %.1f ex/s", epoch, epochs, step, steps, meanLoss,
            examplesPerSecond));
      }
    }
  }

  void endEpoch(int epoch, int epochs, double meanLoss, double accuracy, double seconds) {
    String acc = Double.isNaN(accuracy) ? "" : String.format(Locale.ROOT, " held-out accuracy %.4f", accuracy);
    String line = String.format(
        Locale.ROOT, "epoch %d/%d done: loss %.4f%s (%.1f s)", epoch, epochs, meanLoss, acc, seconds);
    if (interactive) {
      out.print("\r" + line + " ".repeat(Math.max(0, lastLineLength - line.length())) + "\n");
      lastLineLength = 0;
    } else {
      out.println(line);
    }
    out.flush();
  }
}
