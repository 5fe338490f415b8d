package dev.graft.tools.merge;

import static dev.graft.tools.cli.Arguments.graftFolder;
import static dev.graft.tools.cli.Arguments.graftResource;
import static dev.graft.tools.cli.Arguments.integer;
import static dev.graft.tools.cli.Arguments.real;
import static dev.graft.tools.cli.Arguments.value;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.train.CheckpointAverage;
import dev.graft.runtime.train.KeptCheckpoints;
import dev.graft.runtime.train.MetricsWeighting;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The checkpoint mode of {@code graft merge}: averages the checkpoints a {@code CheckpointKeeper}
 * kept, with MWA-style weights {@code w_i ∝ m_i^p}:
 *
 * <pre>
 * CheckpointMergeCommand (--graft DIR/NAME | --resource FOLDER/NAME) [--host HOST.onnx]
 *                        --checkpoints DIR [--last K] [--weighting uniform|loss|step|held-out] [--p P]
 *                        [--space parameters|delta-w] [--rank R] (--out-peft DIR | --out-onnx DIR)
 * </pre>
 *
 * In parameter space ({@code parameters}, the default) every parameter tensor is averaged: {@code
 * --out-peft} saves it as the graft's adapter folder, {@code --out-onnx} as its merged ONNX export.
 * In {@code delta-w} space each linear site's {@code A·B} is averaged (the merge registry's {@code
 * linear}, exact at any rank): {@code --out-onnx} writes the exact merged model, {@code --out-peft}
 * a PEFT LoRA folder for the graft, re-factored to rank {@code R} by SVD with {@code --rank R} (an
 * approximation where the average's rank exceeds R, recorded in the provenance). Every output
 * carries its provenance ({@code graft_merge}). Prints each checkpoint's weight. Exit status 0
 * when written, 1 when the merge failed (the coded error is printed), 2 for bad arguments.
 */
public final class CheckpointMergeCommand {
  public static final int OK = 0;
  public static final int FAILED = 1;
  public static final int USAGE = 2;

  public static final String USAGE_TEXT = String.join("\n",
      "usage: CheckpointMergeCommand (--graft DIR/NAME | --resource FOLDER/NAME) [--host HOST.onnx]",
      "                              --checkpoints DIR [--last K] [--weighting uniform|loss|step|held-out]",
      "                              [--p P] [--space parameters|delta-w] [--rank R] (--out-peft DIR | --out-onnx DIR)",
      "  --graft DIR/NAME        the graft's graphs and manifest in folder DIR (NAME.infer.onnx …)",
      "  --resource FOLDER/NAME  the same from the class path (e.g. dev/graft/examples/sentiment/SentimentLora)",
      "  --host HOST.onnx        the host model (default: the manifest's host, a file or class-path resource)",
      "  --checkpoints DIR       a folder a CheckpointKeeper kept checkpoints in (its index.json)",
      "  --last K                average the last K checkpoints (default: all kept)",
      "  --weighting W           w_i ∝ m_i^p with m = 1/loss (loss), the step (step), the recorded held-out",
      "                          metric (held-out); uniform: equal weights (default loss)",
      "  --p P                   the penalty exponent p >= 0 (default 1; p = 0 is uniform)",
      "  --space S               parameters: average each parameter tensor (default); delta-w: average each",
      "                          linear site's ΔW = A·B (the merge registry's linear, exact at any rank)",
      "  --rank R                delta-w with --out-peft: re-factor each site's average to rank R by SVD",
      "  --out-peft DIR          write a PEFT adapter folder for the graft (replaced as a whole)",
      "  --out-onnx DIR          write the merged ONNX model (model.onnx, model.onnx.data)");

  private CheckpointMergeCommand() {}

  public static void main(String[] args) {
    int status = run(args, System.out, System.err);
    System.out.flush();
    if (status != OK) {
      System.exit(status);
    }
  }

  /** Runs the command on {@code args}; the exit status. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    String graft = null;
    String resource = null;
    Path host = null;
    Path checkpoints = null;
    Path peft = null;
    Path onnx = null;
    Integer rank = null;
    int last = Integer.MAX_VALUE;
    String weighting = "loss";
    double p = 1;
    CheckpointAverage.Space space = CheckpointAverage.Space.PARAMETERS;
    MetricsWeighting weights;
    List<String> rest = new ArrayList<>(List.of(args));
    try {
      while (!rest.isEmpty()) {
        String a = rest.remove(0);
        switch (a) {
          case "--graft" -> graft = value(rest, a);
          case "--resource" -> resource = value(rest, a);
          case "--host" -> host = Path.of(value(rest, a));
          case "--checkpoints" -> checkpoints = Path.of(value(rest, a));
          case "--last" -> last = integer(value(rest, a), a);
          case "--weighting" -> weighting = value(rest, a);
          case "--p" -> p = real(value(rest, a), a);
          case "--space" -> space = switch (value(rest, a)) {
            case "parameters" -> CheckpointAverage.Space.PARAMETERS;
            case "delta-w" -> CheckpointAverage.Space.DELTA_W;
            default -> throw new IllegalArgumentException("--space must be parameters or delta-w");
          };
          case "--rank" -> rank = integer(value(rest, a), a);
          case "--out-peft" -> peft = Path.of(value(rest, a));
          case "--out-onnx" -> onnx = Path.of(value(rest, a));
          default -> throw new IllegalArgumentException("unknown argument '" + a + "'");
        }
      }
      if ((graft == null) == (resource == null)) {
        throw new IllegalArgumentException("expected one of --graft and --resource, given "
            + (graft == null ? "neither" : "both"));
      }
      if (checkpoints == null) {
        throw new IllegalArgumentException("expected --checkpoints DIR, given none");
      }
      if ((peft == null) == (onnx == null)) {
        throw new IllegalArgumentException("expected one of --out-peft and --out-onnx, given "
            + (peft == null ? "neither" : "both"));
      }
      if (rank != null && (space != CheckpointAverage.Space.DELTA_W || peft == null)) {
        throw new IllegalArgumentException("--rank re-factors a delta-w average written with --out-peft");
      }
      if (last < 1) {
        throw new IllegalArgumentException("--last must be >= 1, given " + last);
      }
      weights = switch (weighting) {
        case "uniform" -> MetricsWeighting.uniform();
        case "loss" -> MetricsWeighting.loss(p);
        case "step" -> MetricsWeighting.step(p);
        case "held-out" -> MetricsWeighting.heldOut(p);
        default -> throw new IllegalArgumentException("--weighting must be uniform, loss, step or held-out, given '"
            + weighting + "'");
      };
    } catch (IllegalArgumentException | GraftException e) {
      err.println("error: " + e.getMessage());
      err.println(USAGE_TEXT);
      return USAGE;
    }
    try {
      KeptCheckpoints kept = KeptCheckpoints.read(checkpoints);
      List<KeptCheckpoints.Checkpoint> chosen = kept.last(last);
      CheckpointAverage average = CheckpointAverage.of(chosen, weights);
      AdapterGraphs graphs = graft != null ? graftFolder(graft) : graftResource(resource);
      try (AdapterModel m = AdapterModel.open(graphs, ModelOptions.defaults().withTraining(false).withHost(host))) {
        CheckpointAverage.Averaged done;
        if (space == CheckpointAverage.Space.PARAMETERS) {
          done = average.inParameters(m);
          if (peft != null) {
            done.saveAdapter(m, peft);
          } else {
            m.exportMerged(onnx, ExportOptions.defaults());
          }
        } else {
          CheckpointAverage.DeltaAverage d = average.inDeltaW(m);
          CheckpointAverage.DeltaAverage merged = rank == null ? d : d.toRank(rank);
          if (peft != null) {
            merged.savePeft(peft, m.getManifest());
          } else {
            merged.exportMerged(m, onnx, ExportOptions.defaults());
          }
          done = d.averaged();
        }
        double[] w = done.weights();
        for (int i = 0; i < chosen.size(); i++) {
          KeptCheckpoints.Checkpoint c = chosen.get(i);
          out.printf(Locale.ROOT, "step %d  train_loss %.6f%s  weight %.6f%n", c.step(), c.trainLoss(),
              c.metric() == null ? "" : String.format(Locale.ROOT, "  %s %.6f", kept.metricName(), c.metric()), w[i]);
        }
        out.println("wrote the " + weights.label() + " average of " + chosen.size() + " checkpoints of "
            + graphs.name() + (space == CheckpointAverage.Space.PARAMETERS ? " (parameter space)" : " (ΔW space, linear)")
            + (peft != null ? " as an adapter folder in " + peft : " as a merged ONNX model in " + onnx));
      }
      return OK;
    } catch (GraftException e) {
      err.println("error: " + e.getMessage());
      return FAILED;
    }
  }






}
