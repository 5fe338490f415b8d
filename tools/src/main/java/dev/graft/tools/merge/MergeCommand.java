package dev.graft.tools.merge;

import static dev.graft.tools.cli.Arguments.graftFolder;
import static dev.graft.tools.cli.Arguments.graftResource;
import static dev.graft.tools.cli.Arguments.integer;
import static dev.graft.tools.cli.Arguments.longInteger;
import static dev.graft.tools.cli.Arguments.real;
import static dev.graft.tools.cli.Arguments.value;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.merge.MergeMethod;
import dev.graft.runtime.merge.MergeMethods;
import dev.graft.runtime.merge.MergeResult;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * Merges adapters ({@code graft merge}):
 *
 * <pre>
 * MergeCommand --method M [--density D] [--drop-rate P] [--lambda L] [--seed S] [--rank R]
 *              [--host HOST.onnx] (--graft DIR/NAME | --resource FOLDER/NAME) --input ADAPTER_DIR[=WEIGHT] …
 *              [--target DIR/NAME | --target-resource FOLDER/NAME] (--out-peft DIR | --out-onnx DIR)
 * </pre>
 *
 * Each {@code --input} is a PEFT adapter folder saved for the graft named by the last {@code
 * --graft} or {@code --resource} before it (inputs of different kinds, each with its own graft,
 * may be mixed); its weight defaults to 1. The result goes to the target graft (default: the
 * first input's): {@code --out-peft} writes a PEFT LoRA folder for it (a LoRA graft; add {@code
 * --rank R} to re-factor to rank R by SVD where the merged update's rank exceeds the target's),
 * {@code --out-onnx} a merged ONNX model on it (exact {@code W + ΔW}). Exit status 0 when written,
 * 1 when the merge failed (the coded error is printed), 2 for bad arguments.
 */
public final class MergeCommand {
  public static final int OK = 0;
  public static final int FAILED = 1;
  public static final int USAGE = 2;

  public static final String USAGE_TEXT = String.join("\n",
      "usage: MergeCommand --method M [--density D] [--drop-rate P] [--lambda L] [--seed S] [--rank R]",
      "                    [--host HOST.onnx] (--graft DIR/NAME | --resource FOLDER/NAME) --input DIR[=WEIGHT] ...",
      "                    [--target DIR/NAME | --target-resource FOLDER/NAME] (--out-peft DIR | --out-onnx DIR)",
      "  --method M            one of " + MergeMethods.ids(),
      "  --density D           TIES' and magnitude pruning's kept fraction, in (0, 1] (default 0.2)",
      "  --drop-rate P         DARE's drop probability, in [0, 1) (default 0.5)",
      "  --lambda L            the scaling of task arithmetic, TIES, DARE, magnitude pruning (default 1)",
      "  --seed S              DARE's seed (default 42)",
      "  --rank R              re-factor the merged update of every site to rank R by SVD",
      "  --host HOST.onnx      the host model (default: the manifest's host)",
      "  --graft DIR/NAME      the graft of the inputs that follow (graphs and manifest in folder DIR)",
      "  --resource F/NAME     the same from the class path",
      "  --input DIR[=WEIGHT]  a PEFT adapter folder saved for that graft, and its weight (default 1)",
      "  --target DIR/NAME     the graft the result is written for (default: the first input's)",
      "  --target-resource F/NAME  the same from the class path",
      "  --out-peft DIR        write a PEFT LoRA adapter folder for the target (a LoRA graft)",
      "  --out-onnx DIR        write the merged ONNX model on the target (model.onnx, model.onnx.data)",
      "  --checkpoints DIR     the checkpoint mode: average the checkpoints kept in DIR (CheckpointMergeCommand)",
      "methods:");

  private record Input(AdapterGraphs graphs, Path dir, double weight) {}

  private MergeCommand() {}

  public static void main(String[] args) {
    int status = run(args, System.out, System.err);
    System.out.flush();
    if (status != OK) {
      System.exit(status);
    }
  }

  /** Runs the command on {@code args}; the exit status. With {@code --checkpoints}, the checkpoint mode ({@link CheckpointMergeCommand}). */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    if (List.of(args).contains("--checkpoints")) {
      return CheckpointMergeCommand.run(args, out, err);
    }
    String method = null;
    Merge merge = null;
    Path host = null;
    Integer rank = null;
    AdapterGraphs graft = null;
    AdapterGraphs target = null;
    Path peft = null;
    Path onnx = null;
    List<Input> inputs = new ArrayList<>();
    List<String> rest = new ArrayList<>(List.of(args));
    try {
      List<String[]> options = new ArrayList<>();
      while (!rest.isEmpty()) {
        String a = rest.remove(0);
        switch (a) {
          case "--method" -> method = value(rest, a);
          case "--density", "--drop-rate", "--lambda", "--seed" -> options.add(new String[] {a, value(rest, a)});
          case "--rank" -> rank = integer(value(rest, a), a);
          case "--host" -> host = Path.of(value(rest, a));
          case "--graft" -> graft = graftFolder(value(rest, a));
          case "--resource" -> graft = graftResource(value(rest, a));
          case "--target" -> target = graftFolder(value(rest, a));
          case "--target-resource" -> target = graftResource(value(rest, a));
          case "--input" -> inputs.add(input(graft, value(rest, a)));
          case "--out-peft" -> peft = Path.of(value(rest, a));
          case "--out-onnx" -> onnx = Path.of(value(rest, a));
          default -> throw new IllegalArgumentException("unknown argument '" + a + "'");
        }
      }
      if (method == null) {
        throw new IllegalArgumentException("expected --method M, given none");
      }
      merge = Merge.method(method);
      for (String[] o : options) {
        switch (o[0]) {
          case "--density" -> merge.density(real(o[1], o[0]));
          case "--drop-rate" -> merge.dropRate(real(o[1], o[0]));
          case "--lambda" -> merge.lambda(real(o[1], o[0]));
          default -> merge.seed(longInteger(o[1], o[0]));
        }
      }
      if (inputs.isEmpty()) {
        throw new IllegalArgumentException("expected at least one --input, given none");
      }
      if ((peft == null) == (onnx == null)) {
        throw new IllegalArgumentException("expected one of --out-peft and --out-onnx, given "
            + (peft == null ? "neither" : "both"));
      }
    } catch (IllegalArgumentException | GraftException e) {
      err.println("error: " + e.getMessage());
      err.println(USAGE_TEXT);
      for (MergeMethod m : MergeMethods.all()) {
        err.printf(Locale.ROOT, "  %-16s %s%n", m.id(), m.description());
      }
      return USAGE;
    }
    ModelOptions model = ModelOptions.defaults().withTraining(false).withHost(host);
    try {
      for (Input in : inputs) {
        try (AdapterModel m = AdapterModel.open(in.graphs(), model)) {
          m.loadAdapter(in.dir());
          merge.add(m.delta(in.dir().toString()), in.weight());
        }
      }
      MergeResult result = merge.run();
      if (rank != null) {
        result = result.toRank(rank);
      }
      try (AdapterModel t = AdapterModel.open(target != null ? target : inputs.get(0).graphs(), model)) {
        if (peft != null) {
          result.savePeft(peft, t.getManifest());
        } else {
          result.exportMerged(t, onnx, ExportOptions.defaults());
        }
      }
      out.println("merged " + inputs.size() + " inputs by " + result.method().id()
          + (result.exact() ? "" : " (approximate: A/B-wise)") + " into " + (peft != null ? peft : onnx));
      out.println("provenance: " + result.provenance());
      return OK;
    } catch (GraftException e) {
      err.println("error: " + e.getMessage());
      return FAILED;
    }
  }

  private static Input input(@Nullable AdapterGraphs graft, String spec) {
    if (graft == null) {
      throw new IllegalArgumentException("--input " + spec + ": expected a --graft or --resource before it");
    }
    int eq = spec.lastIndexOf('=');
    double weight = 1;
    String dir = spec;
    if (eq > 0) {
      try {
        weight = Double.parseDouble(spec.substring(eq + 1));
        dir = spec.substring(0, eq);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--input " + spec + ": expected DIR=WEIGHT with a number, given '"
            + spec.substring(eq + 1) + "'");
      }
    }
    if (!Double.isFinite(weight)) {
      throw new IllegalArgumentException("--input " + spec + ": expected a finite weight, given " + weight);
    }
    return new Input(graft, Path.of(dir), weight);
  }



}
