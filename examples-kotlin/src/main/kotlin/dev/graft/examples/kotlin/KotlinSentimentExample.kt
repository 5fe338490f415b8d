package dev.graft.examples.kotlin

import dev.graft.dsl.Graft
import dev.graft.examples.sentiment.SentimentData
import dev.graft.runtime.AdapterGraphs
import dev.graft.runtime.AdapterModel
import dev.graft.runtime.ModelOptions
import dev.graft.runtime.data.Example
import dev.graft.runtime.train.LearningRate
import dev.graft.runtime.train.Trainer
import java.util.Locale

/** The node names the builder graft adapts: the query and value projections of every layer. */
const val QUERY_VALUE = ".*/attention/self/(query|value)/MatMul"

/**
 * What training one graft reached.
 *
 * @property name which graft: `kapt` (the annotated interface) or `builder`
 * @property trainableParameters parameters the graft trains (adapters and head)
 * @property steps training steps taken
 * @property meanLoss mean training loss of the last epoch
 * @property accuracy accuracy on the held-out sentences after training
 */
data class GraftRun(
    val name: String,
    val trainableParameters: Long,
    val steps: Long,
    val meanLoss: Float,
    val accuracy: Double,
)

/**
 * The builder's graft: LoRA of rank 4 on query and value, a 2-class head with a little label
 * smoothing, AdamW with weight decay. Each block is a lambda whose receiver is the options, so it
 * sets Kotlin properties (`rank = 4`); `name` keeps its resources apart from the kapt graft's.
 */
fun builderGraft(): Graft =
    Graft.host(SentimentData.readHost())
        .name("KotlinSentimentBuilder")
        .lora(QUERY_VALUE) {
            rank = 4
            alpha = 8.0
        }
        .classification(2) { labelSmoothing = 0.05 }
        .adamW { weightDecay = 0.01 }

/** The training run both grafts get: batch 16, a linear schedule peaking at 2e-3, seeded. */
fun trainer(epochs: Int): Trainer =
    Trainer.builder().batchSize(16).epochs(epochs).learningRate(LearningRate.linear(2e-3f, 0.1)).seed(1).build()

/** Trains [model] on [train] with [trainer] and reports its held-out accuracy on [heldOut]. */
fun train(name: String, model: AdapterModel, trainer: Trainer, train: List<Example>, heldOut: List<Example>): GraftRun {
    val result = trainer.fit(model, train, heldOut)
    return GraftRun(name, model.parameterCount, result.steps(), result.finalLoss(), result.finalAccuracy())
}

/** Trains the kapt-compiled graft ([KotlinSentiment]) and the builder graft, one after the other. */
fun trainBoth(train: List<Example>, heldOut: List<Example>, epochs: Int): List<GraftRun> {
    val options = ModelOptions.defaults().withSeed(42)
    val trainer = trainer(epochs)
    val annotated = KotlinSentimentGraft.load(options).use { graft ->
        train("kapt", graft.model(), trainer, train, heldOut)
    }
    val compiled = builderGraft().compile()
    val built = AdapterModel.open(Graft.graphs(compiled), options).use { model ->
        train("builder", model, trainer, train, heldOut)
    }
    return listOf(annotated, built)
}

/**
 * Trains both grafts briefly on the UCI Sentiment Labelled Sentences (the Java example's data) and
 * prints one `result:` line. Arguments (optional): `--train N` training sentences (default 480 of
 * the 2400), `--epochs N` (default 1); every run scores the full 600 held-out sentences.
 */
fun main(args: Array<String>) {
    val start = System.nanoTime()
    var trainSize = 480
    var epochs = 1
    var i = 0
    while (i < args.size) {
        val value = args.getOrNull(i + 1) ?: throw IllegalArgumentException("argument ${args[i]} needs a value")
        when (args[i]) {
            "--train" -> trainSize = value.toInt()
            "--epochs" -> epochs = value.toInt()
            else -> throw IllegalArgumentException("unknown argument '${args[i]}'; expected --train N or --epochs N")
        }
        i += 2
    }
    val data = SentimentData.load()
    val runs = trainBoth(data.train().take(trainSize), data.heldOut(), epochs)
    val fields = runs.joinToString(" ") { run ->
        String.format(Locale.ROOT, "%s_accuracy=%.4f %s_params=%d", run.name, run.accuracy, run.name, run.trainableParameters)
    }
    val wall = (System.nanoTime() - start) / 1e9
    println(String.format(Locale.ROOT, "result: %s train_examples=%d epochs=%d wall_s=%.1f", fields, trainSize, epochs, wall))
}
