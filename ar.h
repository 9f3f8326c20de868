/* ar.h - autoregressive density models for C, over a small autodiff core on BLAS.

ABOUT
    One STB-style header for autoregressive density models in C: exact
    log-likelihoods, training and sampling of
      - MADE (masked autoencoder; any depth and ordering; connectivity- and
        order-agnostic mask ensembles) and FVSBN (MADE without hidden layers),
      - NADE (binary) and RNADE (real-valued, mixtures of Gaussians),
      - a Transformer decoder (multi-head masked self-attention in raster or
        any custom order; learned, sinusoidal or rotary positions) with
        KV-cache decoding, temperature/top-k/top-p sampling and exact
        speculative sampling from a cheaper draft model,
      - PixelCNN, Gated PixelCNN and a WaveNet-style dilated stack over
        images, binary or categorical pixels, with cached sampling that
        computes each layer at the new pixel only,
    every family behind one interface (ar_model: init or load any
    checkpoint, nll for training, log_prob, sample with one options struct,
    save), built on a core that is usable on its own:
      - an explicit-state random number generator,
      - float32 tensors (row-major, contiguous, batch-first, up to 4 dims)
        with reverse-mode automatic differentiation recorded on a tape,
      - SGD/Adam/AdamW/Adagrad optimizers with gradient clipping,
      - safetensors checkpoints and an MNIST (IDX) reader.
    Every matrix product goes through BLAS (cblas_sgemm and friends).

BUILDING
    In exactly one C or C++ file:
        #define AR_IMPLEMENTATION
        #include "ar.h"
    Everywhere else just #include "ar.h". Link with:  -lopenblas -lm
    (Debian: apt-get install libopenblas-dev). C99 or later, or C++.

QUICK START (train MADE on binarized MNIST, then sample; see examples/)
        ar_mnist data; ar_model m; ar_graph g; ar_rng rng;
        ar_optim opt = ar_optim_adam(1e-3f);
        ar_mnist_load(&data, "mnist-dir", 1, AR_MNIST_SEED); // check: data.err
        ar_model_cfg cfg = ar_model_default(AR_MADE, 28, 28); // 784-500-784
        ar_model_init(&m, &cfg);                             // check: m.err
        ar_graph_init(&g, 0);
        ar_rng_seed(&rng, 1);
        for (i = 0; i + 100 <= data.n_train; i += 100) {
            ar_graph_reset(&g);                  // drops last step's activations
            ar_tensor *nll = ar_model_nll(&m, &g, data.train + i * data.D, 100, &rng);
            ar_params_zero_grad(&m.ps);
            if (ar_backward(&g, ar_mean(&g, nll, AR_ALL))) { puts(g.err); break; }
            ar_optim_step(&opt, &m.ps);
        }
        ar_sample_opts so = ar_sample_defaults();
        ar_model_sample(&m, 16, &so, &rng, out);   // 16 digits, out[16 * 784]
        ar_model_log_prob(&m, data.test, 100, lp); // log p of 100 test digits
        ar_model_save(&m, "made.safetensors");     // ar_model_load reads any kind
        ar_graph_free(&g); ar_model_free(&m); ar_mnist_free(&data);
    Every family (AR_FVSBN, AR_NADE, AR_RNADE, AR_TRANSFORMER, AR_PIXELCNN,
    AR_GATED, AR_WAVENET) is used the same way; only the config differs.

    The core alone (logistic regression; (int[]){..} is C99, not C++):
        ar_params ps; ar_params_init(&ps);
        ar_tensor *W = ar_params_add(&ps, "W", 2, (int[]){1, D});
        ar_tensor *b = ar_params_add(&ps, "b", 1, (int[]){1});
        ar_params_alloc(&ps);
        ...  ar_graph_reset(&g);
             ar_tensor *z = ar_linear(&g, ar_input(&g, X, 2, (int[]){N, D}), W, b);
             ar_backward(&g, ar_mean(&g, ar_bce_logits(&g, z, Y), AR_ALL));

BUILD MACROS (define before including the implementation)
    AR_STATIC                  all functions static to this translation unit
    AR_MALLOC(n) AR_REALLOC(p,n) AR_FREE(p)
                               allocator; define all three or none
    AR_MAX_ALLOC (16 GiB)      larger single requests fail as AR_ERR_NOMEM
    AR_NO_CBLAS                use a plain C sgemm instead of cblas (slow;
                               for builds without a BLAS)
    AR_ERR_LEN (256)           message buffer size; it changes struct layouts,
                               so every file must see the same value

ERRORS (the contract)
    - Every fallible call returns an ar_status (AR_OK == 0, errors < 0) or
      NULL, and writes a non-empty message into the err field of the object
      it is called on: ar_model.err for every call taking an ar_model (the
      ar_made_/ar_tfm_/ar_cnn_ calls and the KV cache included),
      ar_graph.err for graph ops, ar_params.err for parameter, optimizer
      and checkpoint calls on an ar_params, ar_idx.err, ar_mnist.err. A
      NULL object has nowhere to hold a message: AR_ERR_ARG alone.
      ar_status_str() names a code.
    - Success clears that message; a failed call leaves the caller's
      objects as they were (the message aside; what an output array holds
      after a failure is unspecified).
    - Status codes, by one rule: AR_ERR_ARG for the call's own arguments
      (NULL pointers, sizes and config fields outside their documented
      limits, axes, indices, options, flags, an object not initialized or
      made for another, e.g. a cache of another model); AR_ERR_SHAPE when
      tensor shapes do not fit each other; AR_ERR_RANGE for a value inside
      data (pixel, token, label, id) outside its domain, a size computed
      from valid arguments that overflows, or a cache that is full;
      AR_ERR_NUMERIC for NaN or Inf in data or weights (log-probabilities
      that come out NaN included; weights are not saved or loaded with
      them); AR_ERR_IO, AR_ERR_FORMAT, AR_ERR_VERSION for files;
      AR_ERR_NOMEM, also for any single request above AR_MAX_ALLOC.
    - init and load calls treat their struct as output only: it may hold
      garbage, a model it held is not freed (free it first), and after a
      failure it holds no model. Free calls accept a zero-filled or freed
      struct.
    - The library never exits, aborts or prints; user input (shapes,
      labels, file bytes, sizes) is always checked. No sequence of public
      calls corrupts memory.
    - Graph errors are sticky: an op given a NULL input or called after a
      failure returns NULL and keeps the first message, so a whole forward
      pass can be checked once at the end (ar_model_nll fails the graph
      with the model's message too).

MEMORY
    ar_params owns the persistent state: one contiguous float block each for
    values, gradients and the two optimizer moments, in declaration order.
    ar_graph owns a bump arena for activations and gradients of one step and
    the tape. ar_graph_reset() rewinds both; after the first step has shown
    how much memory a step needs, later steps do not call malloc at all.
    Pointers handed to graph ops (input data, targets, labels, ids, masks)
    are borrowed: they must stay valid and unchanged until the next
    ar_graph_reset(). Tensors are contiguous, no strides or views.
    An ar_model owns its parameters (m.ps), its family's state and a
    scratch graph for ar_model_log_prob and ar_model_sample, kept between
    calls (log_prob and the graph-based samplers of one size do not
    allocate after the first call; the KV cache and the CNNs' cached
    sampling state are made per ar_model_sample call). Nothing points
    back into the struct: a model may be moved by assignment (then use
    only the copy). A KV cache records the model it was made for by address.

FILE FORMAT
    Checkpoints are safetensors: 8-byte little-endian header length, a JSON
    header mapping each parameter name to {"dtype":"F32","shape":[...],
    "data_offsets":[begin,end]} plus "__metadata__" (string -> string, used
    for the model configuration), then the raw little-endian float32 data in
    declaration order. Files are written to "<path>.tmp" and renamed into
    place. Loading checks header length, JSON syntax, dtypes, shapes, offsets
    (in bounds, contiguous, covering the data) and the file size, and copies
    into the parameters only when everything matched.

    Model checkpoints carry "ar.model" (made, fvsbn, nade, rnade,
    transformer, pixelcnn, gated, wavenet), "ar.version" and the whole
    configuration in __metadata__, MADE's orderings and connectivity labels
    included, so ar_model_load rebuilds the model from the file alone.
    Version rule: a file loads when its ar.version is MAJOR.MINOR.PATCH with
    this library's major and a minor no newer than this library's (while
    the major is 0: minor 4 or later); otherwise AR_ERR_VERSION. Files of
    0.4.x load (MADE rebuilds its masks from the saved seed, as 0.4 did),
    except Transformers, whose start token moved inside the model in 0.5.

THREADING
    No global mutable state. Separate objects may be used from separate
    threads; one object, a model included, must not be used by two
    threads at once (a model keeps its sampling and evaluation scratch and
    MADE's current mask set). Load a model per thread to sample in
    parallel. The BLAS library may use its own threads
    (OPENBLAS_NUM_THREADS). Built with -fopenmp, ar.h also splits its own
    loops (products of at most 8 rows, as in decoding a few sequences or
    checking a few drafted tokens, and the decoding step's attention)
    over OpenMP's threads (OMP_NUM_THREADS,
    omp_set_num_threads); each output is computed whole by one thread, so
    results are the same bits for every thread count. Without -fopenmp
    those loops run on the calling thread.

TESTING
    tests/ checks every op's backward against central finite differences
    (ar_gradcheck), the optimizers against hand computations, checkpoint
    round trips and corrupted files, the IDX reader on bad files, that a
    training step allocates nothing after the first, and, looping over
    every family through ar_model: exact normalization (RNADE: the density
    integrates to 1), the autoregressive property, whole-model gradients,
    that samples follow the model's own probabilities under every sampling
    option, save/load round trips and every rule of the contract; cached
    sampling and KV-cache decoding equal the full forward pass. A libFuzzer
    target drives random sequences of public calls (make fuzz).

LICENSE
    See the end of the file: MIT or public domain, your choice.
*/
#ifndef AR_H
#define AR_H

#include <stddef.h>
#include <stdint.h>

#define AR_VERSION_MAJOR 0
#define AR_VERSION_MINOR 5
#define AR_VERSION_PATCH 2

#define AR_MAX_DIM 4 /* tensor rank limit (fixed: op parameters assume it) */
#define AR_MAX_SRC 4
#ifndef AR_ERR_LEN
#define AR_ERR_LEN 256
#endif
#define AR_META_MAX 1024 /* entries in a checkpoint's __metadata__ */

#ifndef ARDEF
#ifdef AR_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define ARDEF static __attribute__((unused))
#else
#define ARDEF static
#endif
#else
#define ARDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Status ============================================================ */

typedef enum ar_status {
    AR_OK = 0,
    AR_ERR_NOMEM = -1,   /* allocation failed */
    AR_ERR_ARG = -2,     /* invalid argument (NULL, non-positive size, bad value) */
    AR_ERR_SHAPE = -3,   /* tensor shapes do not fit together */
    AR_ERR_IO = -4,      /* file could not be opened, read or written */
    AR_ERR_FORMAT = -5,  /* file contents malformed or not what was expected */
    AR_ERR_VERSION = -6, /* file written by an incompatible version */
    AR_ERR_RANGE = -7,   /* value out of range (label, token, size overflow) */
    AR_ERR_NUMERIC = -8  /* NaN or Inf where a finite number is required */
} ar_status;

ARDEF const char *ar_status_str(ar_status s);
ARDEF const char *ar_version(void); /* "MAJOR.MINOR.PATCH" */
ARDEF void ar_free(void *p);        /* frees buffers ar.h returned (AR_FREE) */

/* ==== RNG: xoshiro256**, explicit state ================================== */

typedef struct ar_rng { uint64_t s[4]; } ar_rng;

ARDEF void ar_rng_seed(ar_rng *r, uint64_t seed); /* any seed, 0 included */
ARDEF uint64_t ar_rng_u64(ar_rng *r);
ARDEF uint32_t ar_rng_below(ar_rng *r, uint32_t n); /* uniform in [0,n), n>0 */
ARDEF float ar_rng_uniform(ar_rng *r);              /* [0,1), 24 random bits */
ARDEF float ar_rng_normal(ar_rng *r);               /* N(0,1), Box-Muller */
ARDEF int ar_rng_bernoulli(ar_rng *r, float p);     /* 1 with probability p */
/* Index i with probability w[i]/sum(w); w >= 0, need not sum to 1.
   Returns -1 if n <= 0 or no weight is positive. */
ARDEF int ar_rng_categorical(ar_rng *r, const float *w, int n);
ARDEF void ar_rng_shuffle(ar_rng *r, int *a, int n);

/* ==== Tensors and autodiff ============================================== */

/* The op list, in one place: enum, names and backward table come from it. */
#define AR__OPS(X)                                                             \
    X(LEAF, leaf) X(MATMUL, matmul) X(LINEAR, linear)                          \
    X(MASKED_LINEAR, masked_linear) X(ADD, add)                                \
    X(SUB, sub) X(MUL, mul) X(SCALE, scale) X(SUM, sum) X(MEAN, mean)          \
    X(SIGMOID, sigmoid) X(TANH, tanh) X(RELU, relu) X(GELU, gelu)              \
    X(SOFTPLUS, softplus) X(EXP, exp) X(LOG, log) X(LOG_SIGMOID, log_sigmoid)  \
    X(SOFTMAX, softmax) X(LOG_SOFTMAX, log_softmax) X(LOGSUMEXP, logsumexp)    \
    X(CAUSAL_SOFTMAX, causal_softmax)                                          \
    X(LAYERNORM, layernorm) X(EMBEDDING, embedding) X(SLICE, slice)            \
    X(CONCAT, concat) X(RESHAPE, reshape) X(PERMUTE, permute)                  \
    X(MASKED_FILL, masked_fill)                                                \
    X(BCE_LOGITS, bce_logits) X(CROSS_ENTROPY, cross_entropy) X(NADE, nade)    \
    X(CONV, conv) X(GATE, gate) X(ROPE, rope) X(ATTENTION, attention)

typedef enum ar_op {
#define AR__ENUM(E, n) AR_OP_##E,
    AR__OPS(AR__ENUM)
#undef AR__ENUM
    AR_OP_COUNT
} ar_op;

enum {
    AR_F_PARAM = 1, /* persistent parameter owned by an ar_params */
    AR_F_GRAD = 2   /* a gradient flows into this tensor */
};

#define AR_ALL (-1) /* axis argument of ar_sum/ar_mean: reduce everything */

typedef struct ar_tensor ar_tensor;
struct ar_tensor {
    float *x;                    /* n values (borrows arena, params or caller data) */
    float *g;                    /* n gradients or NULL (borrows arena or params) */
    size_t n;                    /* number of elements */
    int nd, shape[AR_MAX_DIM];   /* row-major, contiguous */
    ar_op op;
    unsigned flags;              /* AR_F_* */
    ar_tensor *src[AR_MAX_SRC];  /* inputs (borrows) */
    int ip[4];                   /* integer op parameters */
    float fp[2];                 /* float op parameters */
    const void *aux;             /* borrowed op data: targets, labels, ids, mask */
    float *save;                 /* arena buffer kept for the backward pass */
    char name[48];               /* parameters only */
};

typedef struct ar__block ar__block;
typedef struct ar_graph {
    char *mem;            /* owns: main arena block */
    size_t cap, used;     /* bytes */
    ar__block *overflow;  /* owns: blocks added when mem ran out, oldest first; kept */
    ar__block *cur;       /* the overflow block being filled (NULL: none yet this step) */
    ar_tensor **tape;     /* owns: ops that need a backward, in creation order */
    int ntape, cap_tape;
    int grad;             /* record the tape (1, default) or inference only (0) */
    ar_status status;     /* first error since the last reset */
    char err[AR_ERR_LEN];
} ar_graph;

/* arena_bytes is a hint (0 for a default); the arena grows as needed and
   keeps what it grew to, so repeated steps of one shape allocate nothing. */
ARDEF ar_status ar_graph_init(ar_graph *g, size_t arena_bytes);
ARDEF void ar_graph_free(ar_graph *g);
ARDEF void ar_graph_reset(ar_graph *g); /* drop all tensors, clear errors */
ARDEF void ar_graph_set_grad(ar_graph *g, int enabled);
ARDEF void *ar_graph_alloc(ar_graph *g, size_t bytes); /* scratch until reset, 64-aligned */
/* A leaf over caller data (borrowed until reset); no gradient. */
ARDEF ar_tensor *ar_input(ar_graph *g, const float *data, int nd, const int *shape);
/* A zero-filled leaf in the arena. */
ARDEF ar_tensor *ar_zeros(ar_graph *g, int nd, const int *shape);
/* d(loss)/d(everything) for a one-element loss; adds into parameter grads. */
ARDEF ar_status ar_backward(ar_graph *g, ar_tensor *loss);
ARDEF const char *ar_op_name(ar_op op);

/* Ops. Each computes its value at once and, if any input carries a
   gradient, records itself for ar_backward. Shapes in comments. The
   models use a few fused ops (ar_masked_linear, ar_conv2d, ar_gate,
   ar_attention, ar_layernorm, the losses); the rest are the general pieces
   for models of your own, and the unfused form of those: ar_attention is
   ar_slice, ar_permute, ar_rope, ar_matmul and ar_causal_softmax_order
   composed (the tests check one against the other). */
/* a[...,M,K] b[...,K,N] -> [...,M,N]; trans_a/trans_b read a or b transposed
   in their last two dims. b may be 2-D and shared across a's batch dims. */
ARDEF ar_tensor *ar_matmul(ar_graph *g, ar_tensor *a, ar_tensor *b, int trans_a, int trans_b);
/* x[...,I] W[O,I] b[O] or NULL -> x W^T + b [...,O] */
ARDEF ar_tensor *ar_linear(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b);
/* ar_linear with W[o][i] kept only where out_label[o] >= in_label[i] + strict
   (strict 0 or 1): MADE's connectivity rule. Masked weights get no gradient.
   The labels are copied. Only about the kept part of W is read and
   multiplied (outputs and inputs are sorted by label, which makes the mask
   a staircase), so the time falls with the mask's density. With a gradient
   it keeps O*In floats in the arena for the backward, whatever the labels. */
ARDEF ar_tensor *ar_masked_linear(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, const int *out_label,
                                  const int *in_label, int strict);
/* Convolution, stride 1, channels last, output the size of the input:
   x[N,H,W,Ci] W[Co,kh,kw,Ci] b[Co] or NULL -> y[N,H,W,Co],
   y[n,r,c] = b + sum_{i,j} W[:,i,j,:] x[n, r - top + i dil, c - left + j dil]
   (zero outside the image). Only the first `taps` kernel positions in
   raster order take part (0: all): with a k x k kernel and top = left =
   k/2, taps = (k/2) k + k/2 is PixelCNN's mask A (the centre excluded), one
   more is mask B. Weights past the used taps are never read or changed.
   One sgemm over im2col columns of the used taps. */
ARDEF ar_tensor *ar_conv2d(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, int top, int left, int dilation,
                           int taps);
/* Causal dilated 1-D convolution over time, channels last:
   x[N,T,Ci] W[Co,k,Ci] b[Co] or NULL -> y[N,T,Co],
   y[n,t] = b + sum_i W[:,i,:] x[n, t - shift - (k-1-i) dilation] (zero
   before the start). shift 0: y_t sees x_<=t; shift 1: x_<t (a first layer
   that must not see its own target). ar_conv2d with H = 1. */
ARDEF ar_tensor *ar_conv1d(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, int dilation, int shift);
/* Gated activation x[...,2F] -> tanh(x[...,:F]) * sigmoid(x[...,F:]) [...,F] */
ARDEF ar_tensor *ar_gate(ar_graph *g, ar_tensor *x);
/* Elementwise. b has a's shape, or a's trailing dims (broadcast over the
   leading ones, e.g. a bias row), or one element. */
ARDEF ar_tensor *ar_add(ar_graph *g, ar_tensor *a, ar_tensor *b);
ARDEF ar_tensor *ar_sub(ar_graph *g, ar_tensor *a, ar_tensor *b);
ARDEF ar_tensor *ar_mul(ar_graph *g, ar_tensor *a, ar_tensor *b);
ARDEF ar_tensor *ar_scale(ar_graph *g, ar_tensor *x, float s);
/* Reduce one axis (the axis is removed) or AR_ALL (-> one element). */
ARDEF ar_tensor *ar_sum(ar_graph *g, ar_tensor *x, int axis);
ARDEF ar_tensor *ar_mean(ar_graph *g, ar_tensor *x, int axis);
ARDEF ar_tensor *ar_sigmoid(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_tanh(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_relu(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_gelu(ar_graph *g, ar_tensor *x); /* exact, x Phi(x) (Phi to 1e-7) */
ARDEF ar_tensor *ar_softplus(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_exp(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_log(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_log_sigmoid(ar_graph *g, ar_tensor *x);
/* Over the last axis. Rows that are all -inf give softmax 0. */
ARDEF ar_tensor *ar_softmax(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_log_softmax(ar_graph *g, ar_tensor *x);
ARDEF ar_tensor *ar_logsumexp(ar_graph *g, ar_tensor *x); /* [...,C] -> [...] */
/* Attention weights in one pass: x[...,T,T] -> softmax over j <= t of
   scale * x[...,t,j], and 0 for j > t (scale, causal mask and softmax fused). */
ARDEF ar_tensor *ar_causal_softmax(ar_graph *g, ar_tensor *x, float scale);
/* The same for any autoregressive order: query t sees key j when
   rank[j] <= rank[t] (rank [T], a permutation of [0,T), borrowed until
   reset); rank[j] = j is ar_causal_softmax. */
ARDEF ar_tensor *ar_causal_softmax_order(ar_graph *g, ar_tensor *x, float scale, const int *rank);
/* Multi-head causal self-attention in one op: qkv[B,n,3d] (queries, keys
   and values side by side, each `heads` heads of d/heads) -> [B,n,d]: per
   head softmax(scale q k^T) v, position t seeing positions j <= t, or with
   rank [n] (a permutation, borrowed until reset) those with rank[j] <=
   rank[t]. rotary: q and k rotated by position first, as ar_rope. The
   n x n weights are not stored: the backward recomputes them in blocks. */
ARDEF ar_tensor *ar_attention(ar_graph *g, ar_tensor *qkv, int heads, float scale, const int *rank, int rotary);
/* x[...,C], gain[C] and bias[C] each optional (NULL) */
ARDEF ar_tensor *ar_layernorm(ar_graph *g, ar_tensor *x, ar_tensor *gain, ar_tensor *bias, float eps);
/* W[V,C], ids of shape `shape` with values in [0,V) -> [shape..., C] */
ARDEF ar_tensor *ar_embedding(ar_graph *g, ar_tensor *W, const int *ids, int nd, const int *shape);
ARDEF ar_tensor *ar_slice(ar_graph *g, ar_tensor *x, int axis, int start, int len);
ARDEF ar_tensor *ar_concat(ar_graph *g, ar_tensor *a, ar_tensor *b, int axis);
ARDEF ar_tensor *ar_reshape(ar_graph *g, ar_tensor *x, int nd, const int *shape);
/* Reorders axes: output axis i is input axis perm[i] (a copy, e.g. [B,T,H,D]
   to [B,H,T,D] with perm {0,2,1,3}). */
ARDEF ar_tensor *ar_permute(ar_graph *g, ar_tensor *x, const int *perm);
/* Rotary position embedding of x[...,n,dh] (dh even): the pair (2i, 2i+1)
   at position p rotates by p * 10000^(-2i/dh); positions are the index on
   the second-to-last axis plus offset. */
ARDEF ar_tensor *ar_rope(ar_graph *g, ar_tensor *x, int offset);
/* y = mask ? x : value, mask of n_mask == x's trailing elements (broadcast) */
ARDEF ar_tensor *ar_masked_fill(ar_graph *g, ar_tensor *x, const float *mask, size_t n_mask, float value);
/* Losses, one value per row: logits[...,D] -> [...].
   bce: sum_d -log p(t_d | logit_d), targets in [0,1].
   cross_entropy: -log softmax(logits)[label], labels in [0,C). */
ARDEF ar_tensor *ar_bce_logits(ar_graph *g, ar_tensor *logits, const float *targets);
ARDEF ar_tensor *ar_cross_entropy(ar_graph *g, ar_tensor *logits, const int *labels);

/* ==== Parameters ======================================================== */

typedef struct ar_params {
    ar_tensor **t;      /* owns: the parameter tensors, declaration order */
    int n, cap;
    float *x, *g;       /* owns: values and gradients, contiguous */
    float *m, *v;       /* owns: optimizer moments, allocated at first use */
    size_t total;       /* number of floats in each block */
    char err[AR_ERR_LEN];
} ar_params;

ARDEF void ar_params_init(ar_params *ps);
/* Declare a parameter (before ar_params_alloc). The pointer stays valid
   until ar_params_free; its data exists after ar_params_alloc. */
ARDEF ar_tensor *ar_params_add(ar_params *ps, const char *name, int nd, const int *shape);
ARDEF ar_status ar_params_alloc(ar_params *ps); /* values zeroed */
ARDEF void ar_params_free(ar_params *ps);
ARDEF ar_tensor *ar_params_find(const ar_params *ps, const char *name);
ARDEF void ar_params_zero_grad(ar_params *ps);
/* AR_ERR_NUMERIC, naming the first parameter whose value or gradient is
   NaN or Inf, else AR_OK. Call after ar_backward to stop a diverging run
   before the optimizer spreads the damage. */
ARDEF ar_status ar_params_check_finite(ar_params *ps);
ARDEF double ar_params_grad_norm(const ar_params *ps);
/* Scale all gradients so their global L2 norm is at most max_norm (> 0;
   otherwise nothing changes). Returns the norm before clipping. */
ARDEF double ar_params_clip_grad_norm(ar_params *ps, double max_norm);
ARDEF void ar_fill(ar_tensor *t, float v);
ARDEF void ar_init_uniform(ar_tensor *t, ar_rng *r, float lo, float hi);
ARDEF void ar_init_normal(ar_tensor *t, ar_rng *r, float mean, float std);
/* Glorot uniform for a weight [fan_out, fan_in] (last dim is fan_in). */
ARDEF void ar_init_xavier(ar_tensor *t, ar_rng *r);

/* ==== Optimizers ======================================================== */

typedef enum ar_optim_kind { AR_OPTIM_SGD, AR_OPTIM_ADAM, AR_OPTIM_ADAMW, AR_OPTIM_ADAGRAD } ar_optim_kind;
typedef struct ar_optim {
    ar_optim_kind kind;
    float lr;
    float momentum;      /* SGD */
    float beta1, beta2, eps; /* Adam; Adagrad uses eps */
    float weight_decay;  /* SGD/Adam/Adagrad: L2 added to the gradient; AdamW: decoupled */
    long step;           /* updates done so far */
} ar_optim;

ARDEF ar_optim ar_optim_sgd(float lr, float momentum);
ARDEF ar_optim ar_optim_adam(float lr);
ARDEF ar_optim ar_optim_adamw(float lr, float weight_decay);
/* Adagrad (the MADE paper's optimizer): x -= lr g / (sqrt(sum of g^2) + eps). */
ARDEF ar_optim ar_optim_adagrad(float lr);
/* One update of every parameter from its gradient (PyTorch semantics).
   Errors (out of memory for the moments) are reported in ps->err. */
ARDEF ar_status ar_optim_step(ar_optim *o, ar_params *ps);
/* Learning rate schedule: linear warm-up, then cosine decay to lr_min. */
ARDEF float ar_lr_cosine(long step, long warmup, long total, float lr, float lr_min);

/* ==== Checkpoints (safetensors) ========================================= */

/* String key -> string value, kept in insertion order. */
typedef struct ar_meta {
    int n, cap;
    char **key, **val; /* owns */
} ar_meta;

ARDEF void ar_meta_init(ar_meta *m);
ARDEF void ar_meta_free(ar_meta *m);
ARDEF ar_status ar_meta_set(ar_meta *m, const char *key, const char *val); /* copies both */
ARDEF const char *ar_meta_get(const ar_meta *m, const char *key);          /* NULL if absent */

/* meta may be NULL. The file must hold exactly the parameters of ps, with
   the same names and shapes; on any error ps and meta_out are left
   untouched. On success meta_out (if not NULL, initialized) is replaced by
   the file's metadata. */
ARDEF ar_status ar_params_save(ar_params *ps, const char *path, const ar_meta *meta);
ARDEF ar_status ar_params_load(ar_params *ps, const char *path, ar_meta *meta_out);
/* The same through memory; *buf is freed with ar_free. */
ARDEF ar_status ar_params_save_mem(ar_params *ps, const ar_meta *meta, unsigned char **buf, size_t *len);
ARDEF ar_status ar_params_load_mem(ar_params *ps, const unsigned char *buf, size_t len, ar_meta *meta_out);
/* The optimizer's state (kind, hyperparameters, step count, moments as flat
   tensors "m" and "v" in the parameters' order), an RNG (may be NULL) and
   extra metadata (may be NULL, e.g. a trainer's epoch) as safetensors, so
   training resumes bit for bit. Load checks everything against ps first
   and changes nothing on error; extra_out (initialized, may be NULL) gets
   the file's metadata. Errors in ps->err. */
ARDEF ar_status ar_optim_save(const ar_optim *o, ar_params *ps, const ar_rng *rng, const ar_meta *extra,
                              const char *path);
ARDEF ar_status ar_optim_load(ar_optim *o, ar_params *ps, ar_rng *rng, ar_meta *extra_out, const char *path);

/* ==== Data: IDX files and binarized MNIST ================================ */

typedef struct ar_idx {
    unsigned char *data; /* owns: n bytes */
    size_t n;
    int nd, dims[AR_MAX_DIM];
    char err[AR_ERR_LEN];
} ar_idx;

/* Unsigned-byte IDX file (MNIST images or labels); validates the magic,
   dimensions and that the file length is exactly header + data. */
ARDEF ar_status ar_idx_load(ar_idx *out, const char *path);
ARDEF ar_status ar_idx_load_mem(ar_idx *out, const unsigned char *buf, size_t len);
ARDEF void ar_idx_free(ar_idx *idx);

/* Seed of the binarization used by the examples and reported results. */
#define AR_MNIST_SEED 20150101u

typedef struct ar_mnist {
    float *train, *valid, *test; /* owns (one block): rows of D values */
    int n_train, n_valid, n_test;
    int rows, cols, D;
    char err[AR_ERR_LEN];
} ar_mnist;

/* Reads train-images-idx3-ubyte and t10k-images-idx3-ubyte from dir.
   binarize != 0: pixel ~ Bernoulli(intensity/255) drawn once with `seed`,
   train file first, then test; else intensities/255 in [0,1].
   Split: valid = the last sixth of the training file (MNIST: 10000, so
   train = the first 50000); the file needs at least 6 images. */
ARDEF ar_status ar_mnist_load(ar_mnist *m, const char *dir, int binarize, uint64_t seed);
ARDEF void ar_mnist_free(ar_mnist *m);

/* ==== Models: one interface ============================================== */

/* Every model is an ar_model: made from a config (ar_model_default, then
   ar_model_init) or loaded from any ar.h checkpoint (ar_model_load), trained
   through ar_model_nll on a graph with the optimizers on m.ps, evaluated
   with ar_model_log_prob, sampled with ar_model_sample, saved and freed.

   Data, for every family: N examples of D values each, float x[N*D]
   (row-major; images in raster order, D = rows * cols). m.levels says
   what a value may be:
     2       binary: 0 or 1 (MADE, FVSBN, NADE, binary CNNs, and a
             Transformer with V = 2);
     L > 2   categorical: an integer in [0, L) (CNNs with levels, and the
             Transformer, whose tokens are [0, V));
     0       real: any finite number (RNADE; with the logit transform, a
             number in [0, 1]).
   A value outside its domain is AR_ERR_RANGE (NaN or Inf: AR_ERR_NUMERIC),
   with the example and the place in the message.

   Place t of the model's order holds dimension order[t] (natural order:
   t). Everything a model conditions on comes before it in that order. */
typedef enum ar_kind {
    AR_MADE = 0,        /* masked autoencoder (Germain et al. 2015) */
    AR_FVSBN = 1,       /* fully visible sigmoid belief net: MADE, no hidden layer */
    AR_NADE = 2,        /* binary NADE (Larochelle & Murray 2011) */
    AR_RNADE = 3,       /* real-valued NADE, mixtures of Gaussians (Uria et al. 2013) */
    AR_TRANSFORMER = 4, /* decoder-only Transformer over tokens */
    AR_PIXELCNN = 5,    /* PixelCNN (van den Oord et al. 2016a) */
    AR_GATED = 6,       /* Gated PixelCNN (van den Oord et al. 2016b) */
    AR_WAVENET = 7      /* WaveNet-style dilated causal convolutions (2016c) */
} ar_kind;
#define AR_KIND_COUNT 8

/* ---- per-family configurations (fields of ar_model_cfg) ------------------ */

#define AR_MADE_MAX_HIDDEN 8

/* MADE over D binary inputs: masked ReLU layers whose masks come from
   connectivity labels (hidden unit k of layer l gets m_l(k) in
   [min m_{l-1}, D-1]; a weight is kept when m_l(k) >= m_{l-1}(j), an output
   d sees hidden units with m_L(k) < pos(d), pos = 1-based place in the
   ordering), plus direct masked input-to-output weights when direct = 1.
   FVSBN is the case n_hidden = 0, direct = 1:
   p(x_d = 1 | x_<d) = sigmoid(c_d + sum_{pos(j) < pos(d)} A_dj x_j).
   With K > 1 mask sets the model is their equal mixture (ar_model_log_prob
   and ar_model_sample); training draws one set per batch. */
typedef struct ar_made_cfg {       /* D <= 2^20 */
    int n_hidden;                    /* hidden layers, 0..AR_MADE_MAX_HIDDEN */
    int hidden[AR_MADE_MAX_HIDDEN];  /* units per hidden layer, 1..2^20 */
    int direct;                      /* 0/1: masked input-to-output weights A */
    int n_masks;                     /* K mask sets, 1..4096 (connectivity-agnostic if K > 1) */
    int order_agnostic;              /* 0/1: each mask set draws its own random ordering
                                        (ignored when order is given) */
} ar_made_cfg;

/* NADE over D binary inputs with H sigmoid hidden units shared across
   places: a_1 = c, h_t = sigmoid(a_t), p(x_d = 1 | x_<d) = sigmoid(b_d +
   V_d h_t), a_{t+1} = a_t + W_d x_d (d = order[t]); O(HD) per example.
   RNADE is the same recursion over real x_d with a mixture of K Gaussians
   per dimension (V_d h_t + b_d gives K logits, K means, K log-sigmas). */
#define AR_NADE_MAX_K 64
enum { AR_TRANSFORM_NONE = 0, AR_TRANSFORM_LOGIT = 1 };
typedef struct ar_nade_cfg {   /* D <= 2^20 */
    int H;             /* hidden units, 1..2^20 */
    int K;             /* RNADE: mixture components, 1..AR_NADE_MAX_K (NADE: ignored) */
    int transform;     /* RNADE: AR_TRANSFORM_NONE, or AR_TRANSFORM_LOGIT: data x in
                          [0,1] is modelled as y = logit(1e-6 + (1 - 2e-6) x); densities
                          are of x (the log-determinant is added), samples are x */
} ar_nade_cfg;

/* A decoder-only Transformer over D tokens in [0, V): token embedding plus
   learned, sinusoidal or rotary positions, pre-LayerNorm blocks of
   multi-head causal self-attention and a GELU MLP with residuals, a final
   LayerNorm and an output head. The input at a place is the token of the
   place before it in the order; the first place reads a start token (id
   V, inside the model). The attention mask follows the order. */
#define AR_TFM_MAX_LAYERS 16
#define AR_TFM_MAX_STEP 16 /* tokens per ar_tfm_step_n past T; steps len may undo after the ring wraps */
enum { AR_POS_LEARNED = 0, AR_POS_SINUSOIDAL = 1, AR_POS_ROTARY = 2 };
typedef struct ar_tfm_cfg {    /* D (positions) <= 65536 */
    int V;             /* vocabulary: tokens are [0, V), 2 <= V < 2^24 (m.levels = V) */
    int d, heads;      /* width <= 65536, a multiple of heads */
    int layers, ffn;   /* blocks 1..AR_TFM_MAX_LAYERS, MLP width 1..2^20 */
    int pos;           /* AR_POS_ROTARY (default; an even head size d/heads <= 4096),
                          AR_POS_LEARNED or AR_POS_SINUSOIDAL */
} ar_tfm_cfg;

/* Images generated in raster order, pixels binary (levels 1: one
   Bernoulli logit) or one of `levels` >= 2 values (softmax; the network
   reads value / (levels - 1)). F feature maps throughout.
   PixelCNN: a first_kernel^2 conv with mask A, then `layers` residual
     kernel^2 convs with mask B and ReLU (with the stack's blind spot).
   Gated: a vertical stack ((k/2+1) x k convs over the rows above and the
     current one) feeding, one row down, a horizontal stack (1 x (k/2+1)
     convs up to the pixel); gated units, residuals; no blind spot.
   WaveNet: the pixels as one sequence; a kernel-2 causal conv, then
     `layers` gated residual blocks with dilations 1, 2, .., 2^(dilations-1),
     repeated, and skip connections summed into the head.
   All heads: ReLU, 1x1 conv, ReLU, 1x1 conv to the logits. coords = 1 adds
   each pixel's (row/H, col/W) as two input channels. */
#define AR_CNN_MAX_LAYERS 64
typedef struct ar_cnn_cfg {  /* rows, cols <= 4096 */
    int levels;           /* 1: binary pixels; 2..65536: categorical */
    int channels;         /* F, 1..4096 */
    int layers;           /* hidden layers after the first, 0..AR_CNN_MAX_LAYERS-1 */
    int kernel;           /* PixelCNN, gated: odd hidden kernel size, 1..31 */
    int first_kernel;     /* PixelCNN, gated: odd first kernel size, 3..31 */
    int dilations;        /* WaveNet: length of the dilation cycle, 1..20 */
    int coords;           /* 0 or 1 */
} ar_cnn_cfg;             /* fields a kind does not use are set to 0 by init */

/* Everything a model is made from. ar_model_default fills it with
   defaults that train well; change what you need, then ar_model_init. */
typedef struct ar_model_cfg {
    ar_kind kind;
    int rows, cols;    /* the data's shape: D = rows * cols <= 2^22 values per
                          example (the CNNs need the image shape; others use D) */
    const int *order;  /* NULL: natural order; else a permutation of [0,D),
                          order[t] = dimension at place t (copied by init).
                          MADE, FVSBN, NADE, RNADE and the Transformer */
    uint64_t seed;     /* initial weights (and MADE's masks and orderings) */
    ar_made_cfg made;  /* AR_MADE, AR_FVSBN */
    ar_nade_cfg nade;  /* AR_NADE, AR_RNADE */
    ar_tfm_cfg tfm;    /* AR_TRANSFORMER */
    ar_cnn_cfg cnn;    /* AR_PIXELCNN, AR_GATED, AR_WAVENET */
} ar_model_cfg;

/* ---- the families' state (read-only for callers) --------------------------- */

typedef struct ar_made {
    ar_made_cfg cfg;
    int D;
    ar_tensor *W[AR_MADE_MAX_HIDDEN], *b[AR_MADE_MAX_HIDDEN]; /* hidden layers */
    ar_tensor *V, *c;                /* output [D,H_L] (NULL without hidden layers), bias [D] */
    ar_tensor *A;                    /* direct [D,D] or NULL */
    int *orders;                     /* owns: [K][D] dimension at each place, per mask set */
    int *labels;                     /* owns: [K][sum hidden] connectivity labels */
    int *pos;                        /* owns: [D] 1-based place of each dim, current set */
    int cur;                         /* current mask set */
} ar_made;

typedef struct ar_nade {
    ar_nade_cfg cfg;
    int D;
    ar_tensor *W;      /* [D,H]: row d is the input weight column of x_d */
    ar_tensor *c;      /* [H] */
    ar_tensor *V;      /* [D,H]; RNADE [D,3K,H] */
    ar_tensor *b;      /* [D];   RNADE [D,3K] */
    int *order;        /* owns: [D] */
} ar_nade;

typedef struct ar_tfm_layer {
    ar_tensor *ln1g, *ln1b, *Wqkv, *bqkv, *Wo, *bo; /* Wqkv [3d,d]: q, k, v rows */
    ar_tensor *ln2g, *ln2b, *W1, *b1, *W2, *b2;     /* W1 [ffn,d], W2 [d,ffn] */
} ar_tfm_layer;

typedef struct ar_tfm {
    ar_tfm_cfg cfg;
    int T;                              /* positions (the model's D) */
    ar_tensor *tok, *pos;               /* [V+1,d] (row V: start), [T,d] (learned only) */
    ar_tfm_layer L[AR_TFM_MAX_LAYERS];
    ar_tensor *lnfg, *lnfb, *Wout, *bout; /* head [V,d], [V] */
    float *sinus;                       /* owns: [T,d] sinusoidal table or NULL */
    int *order, *rank;                  /* owns: [T] each with a custom order, else NULL */
} ar_tfm;

typedef struct ar_cnn_layer {
    ar_tensor *W, *b;     /* PixelCNN k x k [F]; gated horizontal; WaveNet kernel 2 [2F] */
    ar_tensor *Wv, *bv;   /* gated: vertical [2F] */
    ar_tensor *Wl, *bl;   /* gated: vertical to horizontal 1x1, one row down [2F] */
    ar_tensor *Wr, *br;   /* gated, WaveNet (layers >= 1): residual 1x1 [F] */
    ar_tensor *Ws, *bs;   /* WaveNet (layers >= 1): skip 1x1 [F] */
} ar_cnn_layer;

typedef struct ar_cnn {
    ar_cnn_cfg cfg;
    int kind, H, W;                     /* AR_PIXELCNN, AR_GATED or AR_WAVENET; image size */
    ar_cnn_layer L[AR_CNN_MAX_LAYERS];  /* L[0] reads the image */
    ar_tensor *W1, *b1, *W2, *b2;       /* head: [F,1,1,F], [levels or 1,1,1,F] */
} ar_cnn;

/* ---- the model -------------------------------------------------------------- */

typedef struct ar_model {
    ar_kind kind;
    int D, rows, cols;   /* values per example, and their shape */
    int levels;          /* 2 binary, L > 2 categorical [0,L), 0 real (see above) */
    ar_params ps;        /* owns the weights: train them with ar_optim_step(&opt, &m.ps) */
    ar_model_cfg cfg;    /* as built (cfg.order points at the model's own copy) */
    ar_made *made;       /* owns: the family's state; exactly one is not NULL */
    ar_nade *nade;
    ar_tfm *tfm;
    ar_cnn *cnn;
    void *work;          /* owns: scratch of log_prob and sample (an ar_graph) */
    char err[AR_ERR_LEN];
} ar_model;

/* Defaults that train well on binarized MNIST-sized data of rows x cols:
   MADE 1 hidden layer of 500 with direct connections; NADE H 500; RNADE H
   500, K 10, logit transform; Transformer V 2, d 64, 4 heads, 2 layers, ffn
   256, rotary positions; PixelCNN F 64, 7x7 then 5 layers of 3x3; Gated F
   32, 7 then 6 layers of 3; WaveNet F 32, 20 layers, dilations 1..512;
   binary pixels; seed 1. */
ARDEF ar_model_cfg ar_model_default(ar_kind kind, int rows, int cols);
/* m is output only (a model it held is not freed: ar_model_free it first).
   On failure m holds no model (m->ps.x is NULL) and m->err says why. */
ARDEF ar_status ar_model_init(ar_model *m, const ar_model_cfg *cfg);
ARDEF void ar_model_free(ar_model *m); /* a zero-filled or freed model is fine */
/* Any ar.h checkpoint: the family is read from the file. m is output only,
   as for init. */
ARDEF ar_status ar_model_load(ar_model *m, const char *path);
ARDEF ar_status ar_model_load_mem(ar_model *m, const unsigned char *buf, size_t len);
/* Weights, configuration, orderings and masks: the file alone rebuilds the
   model. Written to "<path>.tmp", then renamed. */
ARDEF ar_status ar_model_save(ar_model *m, const char *path);
ARDEF ar_status ar_model_save_mem(ar_model *m, unsigned char **buf, size_t *len); /* free *buf with ar_free */
/* "made", "fvsbn", "nade", "rnade", "transformer", "pixelcnn", "gated",
   "wavenet" (the names in checkpoints); NULL for an unknown kind. */
ARDEF const char *ar_kind_name(ar_kind kind);
ARDEF int ar_kind_parse(const char *name); /* the kind of a name, or -1 */

/* -log p(x) per example [N] in nats on g: the training loss (take
   ar_mean). x [N*D] is borrowed until the graph's next reset. rng (may be
   NULL) is the randomness training uses: MADE with K > 1 mask sets draws
   this batch's set from it (NULL: the current set, 0 unless
   ar_made_set_mask chose another). Errors in m->err, and the graph fails
   with the same message. An rng advances even when a call fails. */
ARDEF ar_tensor *ar_model_nll(ar_model *m, ar_graph *g, const float *x, int N, ar_rng *rng);
/* log p(x) per example into out [N] (nats; a density for real data): the
   model's likelihood, for MADE the mixture of all K mask sets. Scratch
   comes from the model (m->work), kept between calls. */
ARDEF ar_status ar_model_log_prob(ar_model *m, const float *x, int N, float *out);
/* Output biases at the marginals of data x [N*D] (log-odds of each
   dimension's mean, log-frequencies of each level; RNADE: each mixture
   spread over its dimension's mean +- 2 sd, with V set to 0): training
   starts from (near) the data's independent model instead of far from
   it. Call after init. */
ARDEF ar_status ar_model_init_bias(ar_model *m, const float *x, int N);

/* How to sample, for every family. Start from ar_sample_defaults(). */
typedef struct ar_sample_opts {
    float temperature;  /* > 0 divides the logits (RNADE: the component logits, and
                           sigma scales by sqrt(T)); 0: greedy, the most likely
                           value, the first of ties (RNADE: the mean of the most
                           likely component) */
    int top_k;          /* > 0: only the k most likely values; 0: all (RNADE:
                           top_k and top_p choose among the mixture components) */
    float top_p;        /* in (0,1): the smallest set of the values top_k left
                           whose probability (renormalized over them) reaches
                           top_p; 0 or 1: all */
    const float *given; /* [N*D] or NULL: observed values, read where known is set */
    const unsigned char *known; /* [N*D] or NULL: nonzero where x takes given's value
                           instead of a draw. Known places that form a prefix of the
                           order give exact samples of p(rest | known); elsewhere
                           each value is drawn given all before it in the order,
                           known or drawn. */
    int naive;          /* CNNs, Transformer: 1 recomputes the whole network per
                           place (the reference) instead of the cached path; both
                           give the same numbers */
    float *probs;       /* [N*D*P] or NULL: the distribution each value was drawn
                           (or, where known, would have been drawn) from, after
                           temperature/top-k/top-p; P = 1 for binary data
                           (p(x = 1)), levels for categorical data, and 1 for
                           real data: the conditional mean of the modelled
                           value (with RNADE's logit transform, of y) */
    ar_model *draft;    /* Transformer only: NULL, or a model that proposes draft_k
                           values per pass for speculative sampling (see
                           ar_model_sample); used, not changed (but its
                           err and scratch) */
    int draft_k;        /* with a draft: 1..AR_TFM_MAX_STEP-1 (without: not read) */
    int64_t *draft_counts; /* [2] or NULL: set by a speculative sample to the
                           values the draft proposed over all N sequences
                           (known places and each sequence's last are never
                           proposed) and how many of them stood */
} ar_sample_opts;

ARDEF ar_sample_opts ar_sample_defaults(void); /* temperature 1, no top-k/top-p, nothing given */
/* N samples into x [N*D], N in 1..2^20. Options are checked (NaN,
   negative or out of range: AR_ERR_ARG), given values as data. MADE with
   K > 1 mask sets: each example draws its set (uniformly, or with known
   values from the sets' posterior given them), then samples from that set
   at the options' temperature: without known values, or with known values
   that are a prefix of every set's order, the samples follow the mixture
   exactly at temperature 1.
   Speculative sampling (a Transformer m, opts.draft set): the draft (a
   Transformer, NADE, MADE (its current mask set) or FVSBN with the same D,
   values and order as m) proposes draft_k values of each sequence from
   its own conditionals under the options; m scores them and one more in
   one pass (ar_tfm_step_n's product of B*(draft_k+1) rows); a proposal y
   stands with probability min(1, p(y)/q(y)), p and q the two models'
   distributions under the options, the first that does not is replaced
   by a draw from max(0, p - q) normalized, and when all stand the next
   value is drawn from p (Leviathan et al. 2023, Chen et al. 2023). The
   samples follow m's distribution under the options exactly, as without
   a draft, whatever the draft (temperature 0: m's greedy choices, token
   for token); probs are m's. Each sequence goes on from its own count
   of values that stood. It pays when a pass over draft_k+1 rows costs
   much less than draft_k+1 single steps (one sequence, or a few) and the
   draft agrees with m often. A draft with naive = 1 is AR_ERR_ARG. */
ARDEF ar_status ar_model_sample(ar_model *m, int N, const ar_sample_opts *opts, ar_rng *rng, float *x);

/* One draw from logits [V] under opts' temperature, top-k and top-p
   (given, known, naive and probs are not used). scratch: 3V floats (2V
   before 0.5); on return scratch[0..V) holds the distribution drawn from.
   Returns the index, or -1 for bad arguments (NULLs, V outside 1..2^24,
   options out of range, NaN or all -inf logits). O(V), plus a selection
   for top-k (O(V) on average) and a sort of the values kept for top-p. */
ARDEF int ar_sample_logits(const float *logits, int V, const ar_sample_opts *opts, ar_rng *rng, float *scratch);

/* ---- what one family alone has -------------------------------------------- */

/* MADE: k in [0, n_masks): the mask set ar_model_nll uses without an rng. */
ARDEF ar_status ar_made_set_mask(ar_model *m, int k);
/* MADE: log p(x) under mask set k alone (k in [0, n_masks)); -1 is the
   mixture (ar_model_log_prob). */
ARDEF ar_status ar_made_log_prob(ar_model *m, const float *x, int N, int k, float *out);
/* Logits [N,D] of p(x_d = 1 | x_<d), current mask set; x [N,D] on g. */
ARDEF ar_tensor *ar_made_logits(ar_model *m, ar_graph *g, ar_tensor *x);

/* Transformer, on int tokens [B,n] in [0,V) (n <= D; n = D with a custom
   order), by position: logits [B,n,V] where position t predicts tokens[t]
   from the tokens before it in the order (the shift and the start token
   are inside), and the per-sequence nll [B]. Borrowed until reset. */
ARDEF ar_tensor *ar_tfm_logits(ar_model *m, ar_graph *g, const int *tokens, int B, int n);
ARDEF ar_tensor *ar_tfm_nll(ar_model *m, ar_graph *g, const int *tokens, int B, int n);
/* KV cache for B sequences: keys and values of every layer for the last
   T steps, and what it was made for (a cache is checked against the model
   it is used with). Step t lives in slot t mod slots: a ring, so that
   models with rotary positions decode past T (see ar_tfm_step); their
   ring has AR_TFM_MAX_STEP - 1 slots more than T, room to take several
   tokens at once and to undo them. */
typedef struct ar_tfm_cache {
    int B, len;          /* sequences, steps taken: set len back to restart (0)
                            or to undo steps (any before the ring wraps, the
                            last AR_TFM_MAX_STEP after); other values are
                            AR_ERR_ARG */
    int held, top;       /* ar.h's: steps 0..held-1 went in; top: 1 + the
                            latest step written (do not set) */
    int slots, rows;     /* ar.h's: the ring's length; rows the scratch holds */
    int layers, T, d, heads, ffn, V; /* the model it was made for */
    const ar_model *model;
    float *k, *v;        /* owns: k [layers][B][heads][d/heads][slots],
                            v [layers][B][heads][slots][d/heads] */
    float *work;         /* owns: scratch for one call */
} ar_tfm_cache;
/* B in 1..2^20. Errors of the cache calls in m->err; a failed init leaves
   an empty cache (safe to free). */
ARDEF ar_status ar_tfm_cache_init(ar_tfm_cache *c, ar_model *m, int B);
ARDEF void ar_tfm_cache_free(ar_tfm_cache *c);
/* One step of B sequences: feeds the tokens [B] drawn at the previous step
   (ignored, may be NULL, at step 0: the start token) and writes the logits
   [B,V] of step c->len (position order[c->len]), then counts the step;
   O(layers (d^2 + min(len, T) d)). Step t is fed the token drawn at step
   t-1 and predicts the token of step t. Past T (rotary positions in the
   natural order only; the others fail with AR_ERR_RANGE at T) the oldest
   step gives way: step t attends to steps t-T+1..t in every layer, each
   with the keys and values computed when it was decoded. That is
   sliding-window attention with a window of T, which the first T steps
   follow exactly (equal to ar_tfm_logits up to float rounding); rotary
   scores depend on distances only, so positions beyond the training
   length are never seen as such. For one layer a step equals a fresh
   pass over its window's T inputs (no start token, so not a call of
   ar_tfm_logits); deeper models stream, they do not re-encode. */
ARDEF ar_status ar_tfm_step(ar_model *m, ar_tfm_cache *c, const int *tokens, float *logits);
/* n steps of B sequences in one pass: tokens [B,n] are what steps len ..
   len+n-1 are fed (sequence b's at tokens[b*n..]; at step 0 the first is
   ignored, and tokens may be NULL only for n = 1 there), logits [B,n,V]
   (not NULL) what they predict; the same numbers as n calls of
   ar_tfm_step up to float rounding, for the price of one pass over the
   weights with B*n rows. This is how a prompt is read and how drafts are
   verified. n in 1..T-len, or 1..AR_TFM_MAX_STEP for models that decode
   past T (else AR_ERR_ARG; a full cache is AR_ERR_RANGE, as for
   ar_tfm_step); a step of n tokens counts n steps (undo them by setting
   len). */
ARDEF ar_status ar_tfm_step_n(ar_model *m, ar_tfm_cache *c, int n, const int *tokens, float *logits);

/* CNNs: logits [N,H,W,P] (P 1 binary, else levels) for images x [N,H*W]. */
ARDEF ar_tensor *ar_cnn_logits(ar_model *m, ar_graph *g, const float *x, int N);
/* WaveNet's output at t sees pixels t-rf .. t-1; the 2-D models' output at
   row y sees rows y-rf .. y. 0 for a model that is not a CNN. */
ARDEF int ar_cnn_receptive_field(const ar_model *m);

/* ==== Gradient check ==================================================== */

/* Builds a one-element loss on g from the current parameter values. */
typedef ar_tensor *(*ar_loss_fn)(ar_graph *g, void *ctx);

/* Compares ar_backward's gradient of every parameter in ps with central
   differences of step eps. *rel_err gets the largest, over parameters, of
   |analytic - numeric| / max(|analytic| + |numeric|, 1e-6) in L2 norm;
   `worst` (if not NULL) names that parameter. */
ARDEF ar_status ar_gradcheck(ar_graph *g, ar_params *ps, ar_loss_fn f, void *ctx,
                             float eps, double *rel_err, const char **worst);

#ifdef __cplusplus
}
#endif
#endif /* AR_H */

/* ======================================================================== */
/*                            IMPLEMENTATION                                */
/* ======================================================================== */
#ifdef AR_IMPLEMENTATION
#ifndef AR_IMPLEMENTATION_DONE
#define AR_IMPLEMENTATION_DONE

/* Map of the implementation. Lower sections never call higher ones.
     config                  allocator, status, version, size and
                             permutation checks
     numerics                exp/sigmoid/GELU kernels, log-sum-exp, BLAS calls
     RNG                     xoshiro256**
     arena and graph         bump arena, tape, marks
     ops                     every op: its forward, then its backward
     parameters              ar_params, initializers
     optimizers              SGD, Adam, AdamW, Adagrad
     I/O                     files, JSON, safetensors, IDX, MNIST
     I/O — optimizer state   ar_optim_save/load
     models — common         model errors, data checks, the one value sampler
     models — MADE / FVSBN, NADE / RNADE, Transformer, convolutional
                             each family: parameters, forward, sampling
     models — the one interface
                             ar_model_*: build, nll, log_prob, sample, bias,
                             checkpoints (the version rule, 0.4 files)
     gradient check */

/* ==== SECTION: config ==================================================== */

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(AR_MALLOC) && defined(AR_FREE) && defined(AR_REALLOC)
#elif !defined(AR_MALLOC) && !defined(AR_FREE) && !defined(AR_REALLOC)
#define AR_MALLOC(n) malloc(n)
#define AR_REALLOC(p, n) realloc(p, n)
#define AR_FREE(p) free(p)
#else
#error "ar.h: define all of AR_MALLOC, AR_REALLOC and AR_FREE, or none of them"
#endif

/* Requests above AR_MAX_ALLOC bytes fail as out of memory without reaching
   the allocator: a corrupt or absurd size never becomes a giant request
   (which sanitizers treat as a crash). */
#ifndef AR_MAX_ALLOC
#define AR_MAX_ALLOC ((size_t)1 << 34)
#endif
static void *ar__malloc(size_t n) { return n <= AR_MAX_ALLOC ? AR_MALLOC(n) : NULL; }
static void *ar__realloc(void *p, size_t n) { return n <= AR_MAX_ALLOC ? AR_REALLOC(p, n) : NULL; }

/* Loops whose iterations are independent run on OpenMP's threads when the
   program is built with -fopenmp (OMP_NUM_THREADS); without it the pragma
   is gone. Each iteration writes its own outputs, so results do not depend
   on the thread count. */
#ifdef _OPENMP
#define AR__PRAGMA(x) _Pragma(#x)
#define AR__PARALLEL_FOR(cond) AR__PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define AR__PARALLEL_FOR(cond)
#endif
/* Work (multiply-adds) below which a parallel loop stays on one thread:
   waking a thread costs about as much. */
#define AR__PAR_MIN 32768

#ifndef AR_NO_CBLAS
#include <cblas.h>
#endif

#define AR__ALIGN 64
#define AR__PI 3.14159265358979323846
#define AR__INV_SQRT2 0.70710678118654752440f
#define AR__INV_SQRT2PI 0.39894228040143267794f

static void ar__seterr(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, AR_ERR_LEN, fmt, ap);
    va_end(ap);
}

ARDEF const char *ar_status_str(ar_status s)
{
    switch (s) {
    case AR_OK: return "ok";
    case AR_ERR_NOMEM: return "out of memory";
    case AR_ERR_ARG: return "invalid argument";
    case AR_ERR_SHAPE: return "shape mismatch";
    case AR_ERR_IO: return "In/Out error";
    case AR_ERR_FORMAT: return "malformed file";
    case AR_ERR_VERSION: return "incompatible version";
    case AR_ERR_RANGE: return "value out of range";
    case AR_ERR_NUMERIC: return "NaN or Inf";
    }
    return "unknown status";
}

#define AR__STR2(x) #x
#define AR__STR(x) AR__STR2(x)
ARDEF const char *ar_version(void)
{
    return AR__STR(AR_VERSION_MAJOR) "." AR__STR(AR_VERSION_MINOR) "." AR__STR(AR_VERSION_PATCH);
}

ARDEF void ar_free(void *p) { AR_FREE(p); }

/* a*b without overflow; 0 on overflow. */
static int ar__mulsz(size_t a, size_t b, size_t *out)
{
    if (a && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}

/* Element count of a shape; 0 if invalid (dims <= 0, nd out of range, overflow). */
static size_t ar__numel(int nd, const int *shape)
{
    size_t n = 1;
    int i;
    if (nd < 1 || nd > AR_MAX_DIM || !shape) return 0;
    for (i = 0; i < nd; i++)
        if (shape[i] <= 0 || !ar__mulsz(n, (size_t)shape[i], &n)) return 0;
    return n;
}

static void ar__shape_str(const ar_tensor *t, char *buf, size_t len)
{
    int i, k = snprintf(buf, len, "[");
    for (i = 0; i < t->nd && k > 0 && (size_t)k < len; i++)
        k += snprintf(buf + k, len - (size_t)k, i ? ",%d" : "%d", t->shape[i]);
    if (k > 0 && (size_t)k < len) snprintf(buf + k, len - (size_t)k, "]");
}

/* -1 if p[0..n) is a permutation of [0,n), else the first place that is
   not (-2: out of memory). rank (may be NULL) gets the inverse. The one
   permutation check: orders, custom attention orders, ar_permute. */
static int ar__perm_bad(const int *p, int n, int *rank)
{
    int *r = rank ? rank : (int *)ar__malloc((size_t)(n > 0 ? n : 1) * sizeof(int)), i, bad = -1;
    if (!r) return -2;
    for (i = 0; i < n; i++) r[i] = -1;
    for (i = 0; i < n && bad < 0; i++) {
        if (p[i] < 0 || p[i] >= n || r[p[i]] >= 0) bad = i;
        else r[p[i]] = i;
    }
    if (!rank) AR_FREE(r);
    return bad;
}

/* ==== SECTION: numerics ================================================== */

/* exp(x) to about 1 ulp, branch-free so loops over it vectorize (libm's
   expf is a call per element). Round x/ln2 to n with the 1.5*2^23 trick,
   reduce r = x - n ln2 (two-part ln2), e^r by its Taylor series to r^7
   (|r| <= ln2/2, truncation < 3e-9), scale by 2^n through the exponent
   bits (in two halves, so 2^128 near the top stays finite). x < -87.3
   gives 0 (so exp(-inf) = 0); x > 88.7 saturates at e^88.7; NaN stays NaN. */
static inline float ar__expf(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float t, n, r, p, s1, s2;
    int32_t bits, k, k1;
    uint32_t e1, e2;
    float xc = x > 88.7f ? 88.7f : x;
    xc = xc < -87.3f ? -87.3f : xc;
    t = xc * 1.44269504088896341f + magic;
    n = t - magic;
    r = xc - n * 0.693145751953125f;       /* ln2 high part, exact in float */
    r = r - n * 1.42860682030941723e-06f;  /* ln2 low part */
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
        r * (1.0f / 720 + r * (1.0f / 5040)))))));
    memcpy(&bits, &t, sizeof bits);
    k = bits - 0x4b400000; /* n as an integer, in [-126, 128] */
    k1 = k / 2;
    e1 = (uint32_t)(k1 + 127) << 23; /* 2^k1 and 2^(k-k1) through the exponent field */
    e2 = (uint32_t)(k - k1 + 127) << 23;
    memcpy(&s1, &e1, sizeof s1);
    memcpy(&s2, &e2, sizeof s2);
    return x < -87.3f ? 0.0f : p * s1 * s2;
}

/* The one stable softmax / log-sum-exp: returns log sum_j exp(x_j),
   shifted by the max so large values keep their precision, and, if y is
   not NULL, writes softmax(x) to y (y may be x): one exp per element. A
   row that is all -inf (fully masked) gives -inf and y = 0; NaN
   propagates. Softmax, log-softmax, logsumexp, the causal softmax and
   cross-entropy all go through here. Eight lanes, so the loops vectorize. */
static float ar__softmax_into(const float *x, size_t n, float *y)
{
    float mx[8], acc[8], m, z = 0;
    size_t j;
    int k;
    for (k = 0; k < 8; k++) { mx[k] = -INFINITY; acc[k] = 0; }
    for (j = 0; j + 8 <= n; j += 8)
        for (k = 0; k < 8; k++) mx[k] = x[j + k] > mx[k] ? x[j + k] : mx[k];
    for (m = mx[0], k = 1; k < 8; k++) m = mx[k] > m ? mx[k] : m;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    if (m == -INFINITY || m == INFINITY) {
        for (j = 0; y && j < n; j++) y[j] = m == INFINITY && x[j] == INFINITY ? 1.0f : 0.0f;
        return m;
    }
    if (y) {
        for (j = 0; j < n; j++) y[j] = ar__expf(x[j] - m);
        for (j = 0; j + 8 <= n; j += 8)
            for (k = 0; k < 8; k++) acc[k] += y[j + k];
        for (; j < n; j++) z += y[j];
    } else {
        for (j = 0; j + 8 <= n; j += 8)
            for (k = 0; k < 8; k++) acc[k] += ar__expf(x[j + k] - m);
        for (; j < n; j++) z += ar__expf(x[j] - m);
    }
    for (k = 0; k < 8; k++) z += acc[k];
    for (j = 0; y && j < n; j++) y[j] *= 1.0f / z;
    return m + logf(z);
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3, odd
   series to s^13 (error < 1e-8); no cancellation for small e. */
static inline float ar__log1p_unit(float e)
{
    float s = e / (2.0f + e), s2 = s * s;
    return 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 +
           s2 * (1.0f / 11 + s2 * (1.0f / 13)))))));
}

static inline float ar__sigmoid(float x)
{
    float e = ar__expf(-fabsf(x)); /* never overflows */
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
static inline float ar__softplus(float x) { return (x > 0 ? x : 0) + ar__log1p_unit(ar__expf(-fabsf(x))); }
/* Phi(x), the standard normal CDF, to 1e-7 (erfc by Abramowitz & Stegun
   7.1.26), and exp(-x^2/2) in *gauss; branch-free, so loops vectorize
   (libm's erff is a call per element). */
static inline float ar__phi(float x, float *gauss)
{
    float z = fabsf(x) * AR__INV_SQRT2, t = 1.0f / (1.0f + 0.3275911f * z), e = ar__expf(-z * z);
    float q = 0.5f * e * t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f +
              t * 1.061405429f)))); /* Phi(-|x|) */
    *gauss = e;
    return x >= 0 ? 1.0f - q : q;
}
static inline float ar__gelu(float x)
{
    float e;
    return x * ar__phi(x, &e);
}
static inline float ar__gelu_grad(float x)
{
    float e, p = ar__phi(x, &e);
    return p + x * AR__INV_SQRT2PI * e;
}

/* Row-major C[M,N] = alpha op(A) op(B) + beta C: the one place matmuls go. */
static void ar__gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
#ifndef AR_NO_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = 0;
            for (k = 0; k < K; k++)
                s += (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            C[(size_t)i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[(size_t)i * ldc + j]);
        }
#endif
}

static void ar__gemv(int ta, int M, int N, float alpha, const float *A, int lda, const float *x, int incx, float beta,
                     float *y, int incy)
{
#ifndef AR_NO_CBLAS
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, M, N, alpha, A, lda, x, incx, beta, y, incy);
#else
    int i, j, m = ta ? N : M, k = ta ? M : N;
    for (i = 0; i < m; i++) {
        float s = 0;
        for (j = 0; j < k; j++) s += (ta ? A[(size_t)j * lda + i] : A[(size_t)i * lda + j]) * x[(size_t)j * incx];
        y[(size_t)i * incy] = alpha * s + (beta == 0 ? 0 : beta * y[(size_t)i * incy]);
    }
#endif
}

/* Sixteen float lanes: a GNU C vector (gcc, clang) that the compiler keeps
   in registers, or a plain array elsewhere. */
#if defined(__GNUC__) || defined(__clang__)
typedef float ar__v16 __attribute__((vector_size(64)));
#define AR__VMAC(acc, a, b) ((acc) += (a) * (b))
#else
typedef struct { float l[16]; } ar__v16;
#define AR__VMAC(acc, a, b) do { int ar__l; for (ar__l = 0; ar__l < 16; ar__l++) (acc).l[ar__l] += (a).l[ar__l] * (b).l[ar__l]; } while (0)
#endif

/* v = p[0..16) (any alignment); v = 16 copies of x. Macros: vectors
   passed by value would change the ABI between builds with and without
   AVX-512. */
#define AR__VLOAD(v, p) memcpy(&(v), (p), sizeof(ar__v16))
#define AR__VSPLAT(v, x) do { float ar__a[16]; int ar__l; for (ar__l = 0; ar__l < 16; ar__l++) ar__a[ar__l] = (x); \
                              memcpy(&(v), ar__a, sizeof(ar__v16)); } while (0)

/* The lanes' sum, halving: one fixed order. */
static float ar__vsum(const ar__v16 *v)
{
    float l[16];
    int n, k;
    memcpy(l, v, sizeof l);
    for (n = 16; n > 1; n /= 2)
        for (k = 0; k < n / 2; k++) l[k] += l[k + n / 2];
    return l[0];
}

/* y[r] = W x[r] + beta y[r] for R <= AR__MV_ROWS rows x [R,In], W [O,In],
   y [R,O]. A product with so few rows is bound by reading W, and this
   reads it once: blocks of 16 rows of W, split across threads, each
   fetched by the first rows of x and reused from cache by the others
   (BLAS's gemv reads W once per row, and its sgemm packs it first). In a
   block, tiles of 4 rows of W by 4 of x load each 16 floats once for 4
   products, so that more rows cost little more while W comes from cache:
   this is what makes checking several drafted tokens in one pass cheap.
   Every output is summed in the same order whatever R and the tile, so a
   row's result does not depend on the rows beside it. */
#define AR__MV_ROWS 8
static void ar__matvec(int R, int O, int In, const float *W, const float *x, float beta, float *y, int par)
{
    long blk, nblk = (O + 15) / 16;
    int In16 = In / 16 * 16;
    (void)par;
    AR__PARALLEL_FOR(par && (long)O * In * R >= AR__PAR_MIN)
    for (blk = 0; blk < nblk; blk++) {
        int o1 = (int)blk * 16 + 16 < O ? (int)blk * 16 + 16 : O, r0, o, a, b, i;
        for (r0 = 0; r0 < R; r0 += 4)
            for (o = (int)blk * 16; o < o1; o += 4) {
                int nr = R - r0 < 4 ? R - r0 : 4, no = o1 - o < 4 ? o1 - o : 4;
                const float *w = W + (size_t)o * In, *xr = x + (size_t)r0 * In;
                ar__v16 acc[4][4];
                memset(acc, 0, sizeof acc);
                if (nr == 4 && no == 4) /* the common tile, unrolled */
                    for (i = 0; i < In16; i += 16) {
                        ar__v16 w0, w1, w2, w3;
                        AR__VLOAD(w0, w + i);
                        AR__VLOAD(w1, w + In + i);
                        AR__VLOAD(w2, w + 2 * (size_t)In + i);
                        AR__VLOAD(w3, w + 3 * (size_t)In + i);
                        for (b = 0; b < 4; b++) {
                            ar__v16 v;
                            AR__VLOAD(v, xr + (size_t)b * In + i);
                            AR__VMAC(acc[0][b], w0, v);
                            AR__VMAC(acc[1][b], w1, v);
                            AR__VMAC(acc[2][b], w2, v);
                            AR__VMAC(acc[3][b], w3, v);
                        }
                    }
                else
                    for (i = 0; i < In16; i += 16)
                        for (a = 0; a < no; a++) {
                            ar__v16 wa;
                            AR__VLOAD(wa, w + (size_t)a * In + i);
                            for (b = 0; b < nr; b++) {
                                ar__v16 v;
                                AR__VLOAD(v, xr + (size_t)b * In + i);
                                AR__VMAC(acc[a][b], wa, v);
                            }
                        }
                for (a = 0; a < no; a++)
                    for (b = 0; b < nr; b++) {
                        const float *wa = w + (size_t)a * In, *xb = xr + (size_t)b * In;
                        float s = ar__vsum(&acc[a][b]), *out = y + (size_t)(r0 + b) * O + o + a;
                        for (i = In16; i < In; i++) s += wa[i] * xb[i];
                        *out = beta == 0 ? s : s + beta * *out;
                    }
            }
    }
}

/* A += alpha x y^T, A row-major [M,N], strided x. */
static void ar__ger(int M, int N, float alpha, const float *x, int incx, const float *y, float *A, int lda)
{
#ifndef AR_NO_CBLAS
    cblas_sger(CblasRowMajor, M, N, alpha, x, incx, y, 1, A, lda);
#else
    int i, j;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) A[(size_t)i * lda + j] += alpha * x[(size_t)i * incx] * y[j];
#endif
}

/* ==== SECTION: RNG ======================================================= */

static uint64_t ar__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

ARDEF void ar_rng_seed(ar_rng *r, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++) { /* splitmix64: never yields the all-zero state */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

ARDEF uint64_t ar_rng_u64(ar_rng *r)
{
    uint64_t *s = r->s, out = ar__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = ar__rotl(s[3], 45);
    return out;
}

ARDEF uint32_t ar_rng_below(ar_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: exactly uniform */
    uint64_t m = (ar_rng_u64(r) >> 32) * (uint64_t)n;
    uint32_t lo = (uint32_t)m;
    if (n == 0) return 0;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (ar_rng_u64(r) >> 32) * (uint64_t)n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

ARDEF float ar_rng_uniform(ar_rng *r) { return (float)(ar_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

ARDEF float ar_rng_normal(ar_rng *r)
{
    double u1 = ((double)(ar_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0,1] */
    double u2 = (double)(ar_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * AR__PI * u2));
}

ARDEF int ar_rng_bernoulli(ar_rng *r, float p) { return ar_rng_uniform(r) < p; }

ARDEF int ar_rng_categorical(ar_rng *r, const float *w, int n)
{
    double total = 0, u, c = 0;
    int i, last = -1;
    for (i = 0; i < n; i++)
        if (w[i] > 0) { total += w[i]; last = i; }
    if (last < 0) return -1;
    u = ((double)(ar_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0)) * total;
    for (i = 0; i < last; i++)
        if (w[i] > 0 && u < (c += w[i])) return i;
    return last; /* rounding can leave u just past the last partial sum */
}

ARDEF void ar_rng_shuffle(ar_rng *r, int *a, int n)
{
    int i;
    for (i = n - 1; i > 0; i--) {
        int j = (int)ar_rng_below(r, (uint32_t)i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

/* ==== SECTION: arena and graph =========================================== */

struct ar__block {
    ar__block *next; /* owns */
    size_t cap, used;
    char *raw;       /* owns */
};

static char *ar__aligned(char *p)
{
    return p + ((AR__ALIGN - (size_t)((uintptr_t)p % AR__ALIGN)) % AR__ALIGN);
}

static int ar__fail(ar_graph *g, ar_status s, const char *fmt, ...)
{
    if (g->status == AR_OK) {
        va_list ap;
        g->status = s;
        va_start(ap, fmt);
        vsnprintf(g->err, AR_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return 0;
}

ARDEF ar_status ar_graph_init(ar_graph *g, size_t arena_bytes)
{
    if (!g) return AR_ERR_ARG;
    memset(g, 0, sizeof *g);
    g->grad = 1;
    g->cap = arena_bytes ? arena_bytes : ((size_t)1 << 20);
    if (g->cap > (size_t)-1 - 2 * AR__ALIGN) {
        g->cap = 0;
        g->status = AR_ERR_RANGE;
        ar__seterr(g->err, "ar_graph_init: arena size %zu is too large", arena_bytes);
        return AR_ERR_RANGE;
    }
    g->mem = (char *)ar__malloc(g->cap + AR__ALIGN);
    if (!g->mem) {
        ar__seterr(g->err, "ar_graph_init: cannot allocate a %zu-byte arena", g->cap);
        g->cap = 0;
        g->status = AR_ERR_NOMEM;
        return AR_ERR_NOMEM;
    }
    return AR_OK;
}

static void ar__free_overflow(ar_graph *g)
{
    while (g->overflow) {
        ar__block *b = g->overflow;
        g->overflow = b->next;
        AR_FREE(b->raw);
        AR_FREE(b);
    }
}

ARDEF void ar_graph_free(ar_graph *g)
{
    if (!g) return;
    ar__free_overflow(g);
    AR_FREE(g->mem);
    AR_FREE(g->tape);
    memset(g, 0, sizeof *g);
}

/* Overflow blocks are kept, not merged or freed: the next step of the same
   shape takes the same memory in the same order, already paged in, and
   allocates nothing. */
ARDEF void ar_graph_reset(ar_graph *g)
{
    ar__block *b;
    if (!g) return;
    for (b = g->overflow; b; b = b->next) b->used = 0;
    g->cur = NULL;
    g->used = 0;
    g->ntape = 0;
    g->status = AR_OK;
    g->err[0] = 0;
}

ARDEF void ar_graph_set_grad(ar_graph *g, int enabled)
{
    if (g) g->grad = enabled != 0;
}

ARDEF void *ar_graph_alloc(ar_graph *g, size_t bytes)
{
    size_t need, total;
    ar__block *b, *last = NULL;
    if (!g || !g->mem) return NULL;
    if (bytes > (size_t)-1 / 4 - 2 * AR__ALIGN) return NULL; /* would wrap below */
    need = (bytes + AR__ALIGN - 1) / AR__ALIGN * AR__ALIGN;
    if (need <= g->cap - g->used) {
        char *p = ar__aligned(g->mem) + g->used;
        g->used += need;
        return p;
    }
    /* the first block from the current one on with room; blocks passed over
       stay unused until the next reset */
    for (b = g->cur ? g->cur : g->overflow; b; last = b, b = b->next)
        if (need <= b->cap - b->used) {
            char *p = ar__aligned(b->raw) + b->used;
            b->used += need;
            g->cur = b;
            return p;
        }
    /* a new last block at least as large as all before it: O(log) blocks */
    total = g->cap < (size_t)-1 / 4 ? g->cap : (size_t)-1 / 4;
    for (b = g->overflow; b; b = b->next) total = total + b->cap > (size_t)-1 / 4 ? (size_t)-1 / 4 : total + b->cap;
    b = (ar__block *)ar__malloc(sizeof *b);
    if (!b) return NULL;
    b->next = NULL;
    b->cap = need > total ? need : total;
    b->used = need;
    b->raw = (char *)ar__malloc(b->cap + AR__ALIGN);
    if (!b->raw) {
        AR_FREE(b);
        return NULL;
    }
    if (last) last->next = b;
    else g->overflow = b;
    g->cur = b;
    return ar__aligned(b->raw);
}

/* Where the arena stands. Rewinding to it hands back everything allocated
   since (tape entries too) while the graph keeps its blocks: a loop of
   inference passes then needs the arena of one pass. */
typedef struct { size_t used, cur_used; ar__block *cur; int ntape; } ar__mark;

static ar__mark ar__graph_mark(const ar_graph *g)
{
    ar__mark m;
    m.used = g->used;
    m.cur = g->cur;
    m.cur_used = g->cur ? g->cur->used : 0;
    m.ntape = g->ntape;
    return m;
}

static void ar__graph_rewind(ar_graph *g, const ar__mark *m)
{
    ar__block *b;
    for (b = m->cur ? m->cur->next : g->overflow; b; b = b->next) b->used = 0; /* untouched when marked */
    if (m->cur) m->cur->used = m->cur_used;
    g->cur = m->cur;
    g->used = m->used;
    g->ntape = m->ntape;
}

/* Checks that the graph is usable and the first nreq inputs exist. */
static int ar__check(ar_graph *g, const char *op, ar_tensor *a, ar_tensor *b, int nreq)
{
    if (!g) return 0;
    if (g->status != AR_OK) return 0;
    if (!g->mem) return ar__fail(g, AR_ERR_ARG, "%s: graph is not initialized", op);
    if ((nreq > 0 && !a) || (nreq > 1 && !b))
        return ar__fail(g, AR_ERR_ARG, "%s: input tensor is NULL", op);
    return 1;
}

/* A new node over nsrc inputs: shape checked, value buffer from the arena
   (unless x_from is given), recorded on the tape if any input carries a
   gradient. */
static ar_tensor *ar__node_n(ar_graph *g, ar_op op, int nd, const int *shape, ar_tensor *const *src, int nsrc,
                             float *x_from)
{
    size_t n = ar__numel(nd, shape), bytes;
    ar_tensor *t;
    int i, grad = 0;
    if (!n || !ar__mulsz(n, sizeof(float), &bytes)) {
        ar__fail(g, AR_ERR_SHAPE, "%s: invalid output shape (rank %d, non-positive or overflowing dims)",
                 ar_op_name(op), nd);
        return NULL;
    }
    t = (ar_tensor *)ar_graph_alloc(g, sizeof *t);
    if (!t) goto nomem;
    memset(t, 0, sizeof *t);
    t->x = x_from ? x_from : (float *)ar_graph_alloc(g, bytes);
    if (!t->x) goto nomem;
    t->n = n;
    t->nd = nd;
    for (i = 0; i < nd; i++) t->shape[i] = shape[i];
    t->op = op;
    for (i = 0; i < nsrc; i++) {
        t->src[i] = src[i];
        grad |= src[i] && (src[i]->flags & AR_F_GRAD);
    }
    if (g->grad && grad) {
        if (g->ntape == g->cap_tape) {
            int cap = g->cap_tape ? 2 * g->cap_tape : 256;
            ar_tensor **tape = (ar_tensor **)ar__realloc(g->tape, (size_t)cap * sizeof *tape);
            if (!tape) goto nomem;
            g->tape = tape;
            g->cap_tape = cap;
        }
        g->tape[g->ntape++] = t;
        t->flags |= AR_F_GRAD;
    }
    return t;
nomem:
    ar__fail(g, AR_ERR_NOMEM, "%s: out of memory for a tensor of %zu elements", ar_op_name(op), n);
    return NULL;
}

static ar_tensor *ar__node(ar_graph *g, ar_op op, int nd, const int *shape, ar_tensor *a, ar_tensor *b,
                           ar_tensor *c, float *x_from)
{
    ar_tensor *src[3];
    src[0] = a; src[1] = b; src[2] = c;
    return ar__node_n(g, op, nd, shape, src, 3, x_from);
}

/* A leaf's shape: rank 1..AR_MAX_DIM and positive dims (AR_ERR_ARG), and
   an element count that fits in memory sizes (AR_ERR_RANGE). */
static int ar__leaf_shape(ar_graph *g, const char *who, int nd, const int *shape)
{
    size_t n = 1, bytes;
    int i;
    if (!shape || nd < 1 || nd > AR_MAX_DIM) return ar__fail(g, AR_ERR_ARG, "%s: need a shape of rank 1..%d", who, AR_MAX_DIM);
    for (i = 0; i < nd; i++)
        if (shape[i] <= 0) return ar__fail(g, AR_ERR_ARG, "%s: dim %d is %d, need > 0", who, i, shape[i]);
    for (i = 0; i < nd; i++)
        if (!ar__mulsz(n, (size_t)shape[i], &n) || !ar__mulsz(n, sizeof(float), &bytes))
            return ar__fail(g, AR_ERR_RANGE, "%s: the shape's size overflows", who);
    return 1;
}

ARDEF ar_tensor *ar_input(ar_graph *g, const float *data, int nd, const int *shape)
{
    if (!ar__check(g, "ar_input", NULL, NULL, 0)) return NULL;
    if (!data) { ar__fail(g, AR_ERR_ARG, "ar_input: data is NULL"); return NULL; }
    if (!ar__leaf_shape(g, "ar_input", nd, shape)) return NULL;
    return ar__node(g, AR_OP_LEAF, nd, shape, NULL, NULL, NULL, (float *)(uintptr_t)data);
}

ARDEF ar_tensor *ar_zeros(ar_graph *g, int nd, const int *shape)
{
    ar_tensor *t;
    if (!ar__check(g, "ar_zeros", NULL, NULL, 0) || !ar__leaf_shape(g, "ar_zeros", nd, shape)) return NULL;
    t = ar__node(g, AR_OP_LEAF, nd, shape, NULL, NULL, NULL, NULL);
    if (t) memset(t->x, 0, t->n * sizeof(float));
    return t;
}

/* The gradient buffer of an input, or NULL if no gradient flows into it. */
#define AR__DX(s) ((s) && ((s)->flags & AR_F_GRAD) ? (s)->g : (float *)NULL)

/* Rows of the last axis: x is viewed as [rows, C]. */
#define AR__LAST(t) ((t)->shape[(t)->nd - 1])
#define AR__ROWS(t) ((t)->n / (size_t)AR__LAST(t))

/* Shape of t without its last axis ([1] for a vector). */
static int ar__drop_last(const ar_tensor *t, int *shape)
{
    int i;
    if (t->nd == 1) { shape[0] = 1; return 1; }
    for (i = 0; i < t->nd - 1; i++) shape[i] = t->shape[i];
    return t->nd - 1;
}

/* ==== SECTION: ops ======================================================= */
/* Forward in the constructor, backward in ar__<op>_bwd. Backwards add (+=)
   into their inputs' gradients, so a tensor used twice gets both. */

/* ---- matmul: a[...,M,K] b[...,K,N] (or [K,N] shared) -> [...,M,N] ------ */

typedef struct { int M, N, K, lda, ldb, batch, shared; } ar__mm;

static ar__mm ar__mm_dims(const ar_tensor *t)
{
    const ar_tensor *a = t->src[0], *b = t->src[1];
    ar__mm d;
    int ta = t->ip[0], tb = t->ip[1];
    d.M = t->shape[t->nd - 2];
    d.N = t->shape[t->nd - 1];
    d.K = ta ? a->shape[a->nd - 2] : a->shape[a->nd - 1];
    d.lda = ta ? d.M : d.K;
    d.ldb = tb ? d.K : d.N;
    d.batch = (int)(a->n / ((size_t)d.M * (size_t)d.K));
    d.shared = b->nd == 2;
    return d;
}

ARDEF ar_tensor *ar_matmul(ar_graph *g, ar_tensor *a, ar_tensor *b, int trans_a, int trans_b)
{
    int shape[AR_MAX_DIM], i, Ka, Kb;
    ar_tensor *t;
    ar__mm d;
    if (!ar__check(g, "ar_matmul", a, b, 2)) return NULL;
    if (a->nd < 2 || b->nd < 2 || (b->nd != 2 && b->nd != a->nd)) {
        ar__fail(g, AR_ERR_SHAPE, "ar_matmul: ranks %d and %d; need a of rank >= 2 and b of rank 2 or a's rank",
                 a->nd, b->nd);
        return NULL;
    }
    for (i = 0; b->nd > 2 && i < a->nd - 2; i++)
        if (a->shape[i] != b->shape[i]) {
            ar__fail(g, AR_ERR_SHAPE, "ar_matmul: batch dim %d differs (%d vs %d)", i, a->shape[i], b->shape[i]);
            return NULL;
        }
    Ka = trans_a ? a->shape[a->nd - 2] : a->shape[a->nd - 1];
    Kb = trans_b ? b->shape[b->nd - 1] : b->shape[b->nd - 2];
    if (Ka != Kb) {
        ar__fail(g, AR_ERR_SHAPE, "ar_matmul: inner dims differ (%d vs %d)", Ka, Kb);
        return NULL;
    }
    if (a->n / (size_t)Ka > 0x7fffffff) { /* batch * M rows, folded into one BLAS call */
        ar__fail(g, AR_ERR_RANGE, "ar_matmul: %zu rows exceed the BLAS limit of 2^31-1", a->n / (size_t)Ka);
        return NULL;
    }
    for (i = 0; i < a->nd - 2; i++) shape[i] = a->shape[i];
    shape[a->nd - 2] = trans_a ? a->shape[a->nd - 1] : a->shape[a->nd - 2];
    shape[a->nd - 1] = trans_b ? b->shape[b->nd - 2] : b->shape[b->nd - 1];
    t = ar__node(g, AR_OP_MATMUL, a->nd, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = trans_a != 0;
    t->ip[1] = trans_b != 0;
    d = ar__mm_dims(t);
    if (d.shared && !t->ip[0]) /* one big product over all batch rows */
        ar__gemm(0, t->ip[1], d.batch * d.M, d.N, d.K, 1, a->x, d.K, b->x, d.ldb, 0, t->x, d.N);
    else
        for (i = 0; i < d.batch; i++)
            ar__gemm(t->ip[0], t->ip[1], d.M, d.N, d.K, 1, a->x + (size_t)i * d.M * d.K, d.lda,
                     b->x + (d.shared ? 0 : (size_t)i * d.K * d.N), d.ldb, 0,
                     t->x + (size_t)i * d.M * d.N, d.N);
    return t;
}

static void ar__matmul_bwd(ar_tensor *t)
{
    ar_tensor *a = t->src[0], *b = t->src[1];
    float *da = AR__DX(a), *db = AR__DX(b);
    int ta = t->ip[0], tb = t->ip[1], i;
    ar__mm d = ar__mm_dims(t);
    if (d.shared && !ta) { /* fold the batch into M, as in the forward */
        d.M *= d.batch;
        d.batch = 1;
    }
    for (i = 0; i < d.batch; i++) {
        const float *A = a->x + (size_t)i * d.M * d.K, *dC = t->g + (size_t)i * d.M * d.N;
        const float *B = b->x + (d.shared ? 0 : (size_t)i * d.K * d.N);
        if (da) {
            float *dA = da + (size_t)i * d.M * d.K;
            if (!ta) ar__gemm(0, !tb, d.M, d.K, d.N, 1, dC, d.N, B, d.ldb, 1, dA, d.K);  /* dC op(B)^T */
            else ar__gemm(tb, 1, d.K, d.M, d.N, 1, B, d.ldb, dC, d.N, 1, dA, d.M);       /* op(B) dC^T */
        }
        if (db) {
            float *dB = db + (d.shared ? 0 : (size_t)i * d.K * d.N);
            if (!tb) ar__gemm(!ta, 0, d.K, d.N, d.M, 1, A, d.lda, dC, d.N, 1, dB, d.N);  /* op(A)^T dC */
            else ar__gemm(1, ta, d.N, d.K, d.M, 1, dC, d.N, A, d.lda, 1, dB, d.K);       /* dC^T op(A) */
        }
    }
}

/* ---- linear: x[...,I] W[O,I] b[O] -> [...,O] ---------------------------- */

/* y = x W^T + b over rows (b may be NULL): the linear forward, also used by
   the Transformer's cached decoding so both compute it the same way. */
static void ar__rows_linear(const float *x, int rows, const ar_tensor *W, const ar_tensor *b, float *y, int par)
{
    int O = W->shape[0], In = W->shape[1], r;
    for (r = 0; b && r < rows; r++) memcpy(y + (size_t)r * O, b->x, (size_t)O * sizeof(float));
    if (rows <= AR__MV_ROWS)
        ar__matvec(rows, O, In, W->x, x, b ? 1.0f : 0.0f, y, par);
    else
        ar__gemm(0, 1, rows, O, In, 1, x, In, W->x, In, b ? 1.0f : 0.0f, y, O);
}

/* The node of a linear op (op named name) after its shape checks: x[...,In]
   W[O,In] b[O] or NULL -> [...,O]. */
static ar_tensor *ar__linear_node(ar_graph *g, ar_op op, const char *name, ar_tensor *x, ar_tensor *W, ar_tensor *b)
{
    int shape[AR_MAX_DIM], i, In = AR__LAST(x);
    if (W->nd != 2 || W->shape[1] != In || (b && (b->nd != 1 || b->shape[0] != W->shape[0]))) {
        char xs[64], ws[64], bs[64] = "none";
        ar__shape_str(x, xs, sizeof xs);
        ar__shape_str(W, ws, sizeof ws);
        if (b) ar__shape_str(b, bs, sizeof bs);
        ar__fail(g, AR_ERR_SHAPE, "%s: x%s W%s b%s; need W [O,%d] and b [O]", name, xs, ws, bs, In);
        return NULL;
    }
    if (AR__ROWS(x) > 0x7fffffff) { /* BLAS takes int dimensions */
        ar__fail(g, AR_ERR_RANGE, "%s: %zu rows exceed the BLAS limit of 2^31-1", name, AR__ROWS(x));
        return NULL;
    }
    for (i = 0; i < x->nd - 1; i++) shape[i] = x->shape[i];
    shape[x->nd - 1] = W->shape[0];
    return ar__node(g, op, x->nd, shape, x, W, b, NULL);
}

ARDEF ar_tensor *ar_linear(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b)
{
    ar_tensor *t;
    if (!ar__check(g, "ar_linear", x, W, 2)) return NULL;
    if (!(t = ar__linear_node(g, AR_OP_LINEAR, "ar_linear", x, W, b))) return NULL;
    ar__rows_linear(x->x, (int)AR__ROWS(x), W, b, t->x, 1);
    return t;
}

static void ar__linear_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0], *W = t->src[1], *b = t->src[2];
    float *dx = AR__DX(x), *dW = AR__DX(W), *db = AR__DX(b);
    int Out = W->shape[0], In = W->shape[1], j;
    size_t rows = AR__ROWS(x), r;
    if (dx) ar__gemm(0, 0, (int)rows, In, Out, 1, t->g, Out, W->x, In, 1, dx, In);
    if (dW) ar__gemm(1, 0, Out, In, (int)rows, 1, t->g, Out, x->x, In, 1, dW, In);
    if (db)
        for (r = 0; r < rows; r++)
            for (j = 0; j < Out; j++) db[j] += t->g[r * Out + j];
}

/* ---- masked linear: x[...,In] W[O,In] b[O], labels -> [...,O] --------------- */

/* With outputs and inputs sorted by label, the kept weights of sorted row r
   are the first pre[r] sorted inputs: a staircase. Rows go in blocks, each
   gathered (masked) and multiplied against its longest prefix, so the
   masked-out part is neither read nor multiplied, except for a sliver at
   each block's steps. About sqrt(O) blocks balance that sliver against
   repacking x for every block. */
typedef struct ar__ml {
    int O, In, rows, rb, nblk;
    int *po, *pi, *pre; /* sorted row -> output, sorted column -> input, kept prefix of each sorted row */
    size_t *off;        /* block b's gathered weights at save + off[b] (all blocks only if a gradient flows) */
    float *xs, *ys;     /* x, and y or its gradient (only if a gradient flows), columns in sorted order */
    float *gxs, *gw;    /* backward scratch: dx sorted [rows,In], one block's dW [rb,In] */
    float *row;         /* scratch [max(In,O)]: a row of W or dW in input order, or of y */
} ar__ml;

static int ar__u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* perm: the indices of lab in ascending label order (ties by index);
   sorted: the labels in that order. key is scratch of n. */
static void ar__argsort(const int *lab, int n, uint64_t *key, int *perm, int *sorted)
{
    int i;
    for (i = 0; i < n; i++) key[i] = (uint64_t)((uint32_t)lab[i] ^ 0x80000000u) << 32 | (uint32_t)i;
    qsort(key, (size_t)n, sizeof *key, ar__u64_cmp);
    for (i = 0; i < n; i++) {
        perm[i] = (int)(key[i] & 0xffffffffu);
        sorted[i] = lab[perm[i]];
    }
}

/* Block b: first sorted row, rows, prefix length. */
static void ar__ml_block(const ar__ml *q, int b, int *r0, int *m, int *P)
{
    *r0 = b * q->rb;
    *m = q->O - *r0 < q->rb ? q->O - *r0 : q->rb;
    *P = q->pre[*r0 + *m - 1];
}

ARDEF ar_tensor *ar_masked_linear(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, const int *out_label,
                                  const int *in_label, int strict)
{
    int i, r, k, blk, O, In, *so, *si, grad, dx, dW;
    float *y;
    ar_tensor *t;
    ar__ml *q;
    uint64_t *key;
    if (!ar__check(g, "ar_masked_linear", x, W, 2)) return NULL;
    if (!out_label || !in_label || (strict != 0 && strict != 1)) {
        ar__fail(g, AR_ERR_ARG, "ar_masked_linear: need out_label, in_label and strict 0 or 1 (strict = %d)", strict);
        return NULL;
    }
    if (!(t = ar__linear_node(g, AR_OP_MASKED_LINEAR, "ar_masked_linear", x, W, b))) return NULL;
    O = W->shape[0];
    In = W->shape[1];
    k = O > In ? O : In;
    q = (ar__ml *)ar_graph_alloc(g, sizeof *q);
    key = (uint64_t *)ar_graph_alloc(g, (size_t)k * sizeof *key);
    so = (int *)ar_graph_alloc(g, (size_t)O * sizeof(int));
    si = (int *)ar_graph_alloc(g, (size_t)In * sizeof(int));
    if (!q || !key || !so || !si) goto nomem;
    q->O = O;
    q->In = In;
    q->rows = (int)AR__ROWS(x);
    q->rb = (int)(2 * sqrt((double)O));
    q->rb = q->rb < 16 ? 16 : q->rb > O ? O : q->rb;
    q->nblk = O / q->rb + (O % q->rb != 0);
    q->po = (int *)ar_graph_alloc(g, (size_t)O * sizeof(int));
    q->pi = (int *)ar_graph_alloc(g, (size_t)In * sizeof(int));
    q->pre = (int *)ar_graph_alloc(g, (size_t)O * sizeof(int));
    q->off = (size_t *)ar_graph_alloc(g, ((size_t)q->nblk + 1) * sizeof(size_t));
    if (!q->po || !q->pi || !q->pre || !q->off) goto nomem;
    ar__argsort(out_label, O, key, q->po, so);
    ar__argsort(in_label, In, key, q->pi, si);
    for (r = 0, k = 0; r < O; r++) { /* both sorted: one merge */
        while (k < In && (long long)si[k] + strict <= so[r]) k++;
        q->pre[r] = k;
    }
    q->off[0] = 0;
    for (blk = 0; blk < q->nblk; blk++) {
        int r0, m, P;
        ar__ml_block(q, blk, &r0, &m, &P);
        q->off[blk + 1] = q->off[blk] + (size_t)m * P;
    }
    grad = (t->flags & AR_F_GRAD) != 0;
    dx = grad && (x->flags & AR_F_GRAD);
    dW = grad && (W->flags & AR_F_GRAD);
    /* The blocks kept for the backward take off[nblk] floats, which depends
       on the labels; the dense size is reserved so that every mask set of
       one shape fits the arena the first step grew. Without a gradient one
       block's buffer serves all blocks. */
    t->save = (float *)ar_graph_alloc(g, (grad ? (size_t)O * In : (size_t)q->rb * In) * sizeof(float));
    q->xs = (float *)ar_graph_alloc(g, (size_t)q->rows * In * sizeof(float));
    q->ys = grad ? (float *)ar_graph_alloc(g, (size_t)q->rows * O * sizeof(float)) : NULL;
    q->row = (float *)ar_graph_alloc(g, (size_t)(O > In ? O : In) * sizeof(float));
    q->gxs = dx ? (float *)ar_graph_alloc(g, (size_t)q->rows * In * sizeof(float)) : NULL;
    q->gw = dW ? (float *)ar_graph_alloc(g, (size_t)q->rb * In * sizeof(float)) : NULL;
    if (!t->save || !q->xs || (grad && !q->ys) || !q->row || (dx && !q->gxs) || (dW && !q->gw)) goto nomem;
    y = grad ? q->ys : t->x; /* sorted columns; unsorted below */
    t->aux = q;
    for (r = 0; r < q->rows; r++)
        for (i = 0; i < In; i++) q->xs[(size_t)r * In + i] = x->x[(size_t)r * In + q->pi[i]];
    for (blk = 0; blk < q->nblk; blk++) {
        int r0, m, P;
        float *Wb = t->save + (grad ? q->off[blk] : 0);
        ar__ml_block(q, blk, &r0, &m, &P);
        for (r = 0; r < m; r++) { /* W's rows are far apart: copy one whole, then permute it in cache */
            float *dst = Wb + (size_t)r * P;
            memcpy(q->row, W->x + (size_t)q->po[r0 + r] * In, (size_t)In * sizeof(float));
            for (i = 0; i < q->pre[r0 + r]; i++) dst[i] = q->row[q->pi[i]];
            for (; i < P; i++) dst[i] = 0;
        }
        if (P) ar__gemm(0, 1, q->rows, m, P, 1, q->xs, In, Wb, P, 0, y + r0, O);
        else
            for (r = 0; r < q->rows; r++) memset(y + (size_t)r * O + r0, 0, (size_t)m * sizeof(float));
    }
    for (r = 0; r < q->rows; r++) {
        const float *ys = y + (size_t)r * O;
        if (!grad) ys = (const float *)memcpy(q->row, ys, (size_t)O * sizeof(float));
        for (i = 0; i < O; i++) t->x[(size_t)r * O + q->po[i]] = ys[i] + (b ? b->x[q->po[i]] : 0);
    }
    return t;
nomem:
    ar__fail(g, AR_ERR_NOMEM, "ar_masked_linear: out of memory for [%d,%d] weights", O, In);
    return NULL;
}

static void ar__masked_linear_bwd(ar_tensor *t)
{
    const ar__ml *q = (const ar__ml *)t->aux;
    float *dx = AR__DX(t->src[0]), *dW = AR__DX(t->src[1]), *db = AR__DX(t->src[2]);
    int O = q->O, In = q->In, r, i, blk;
    for (r = 0; r < q->rows; r++)
        for (i = 0; i < O; i++) {
            float gy = t->g[(size_t)r * O + q->po[i]];
            q->ys[(size_t)r * O + i] = gy;
            if (db) db[q->po[i]] += gy;
        }
    if (dx) memset(q->gxs, 0, (size_t)q->rows * In * sizeof(float));
    for (blk = 0; blk < q->nblk; blk++) {
        int r0, m, P;
        const float *Wb = t->save + q->off[blk];
        ar__ml_block(q, blk, &r0, &m, &P);
        if (!P) continue;
        if (dx) ar__gemm(0, 0, q->rows, P, m, 1, q->ys + r0, O, Wb, P, 1, q->gxs, In);
        if (!dW) continue;
        ar__gemm(1, 0, m, P, q->rows, 1, q->ys + r0, O, q->xs, In, 0, q->gw, P);
        for (r = 0; r < m; r++) { /* unpermute in cache, then add the whole row in order */
            float *dst = dW + (size_t)q->po[r0 + r] * In;
            const float *src = q->gw + (size_t)r * P;
            memset(q->row, 0, (size_t)In * sizeof(float));
            for (i = 0; i < q->pre[r0 + r]; i++) q->row[q->pi[i]] = src[i];
            for (i = 0; i < In; i++) dst[i] += q->row[i];
        }
    }
    for (r = 0; dx && r < q->rows; r++)
        for (i = 0; i < In; i++) dx[(size_t)r * In + q->pi[i]] += q->gxs[(size_t)r * In + i];
}

/* ---- convolution: im2col over the used taps, then one sgemm --------------- */

/* Geometry of one convolution, read from its tensors: x [N,H,W,Ci] (or
   [N,T,Ci], H = 1), weights [Co,kh,kw,Ci] (or [Co,k,Ci], kh = 1). */
typedef struct ar__conv {
    int H, W, Ci, kh, kw, top, left, dil, taps;
} ar__conv;

/* A 1x1 kernel reading its own position: the input is the column matrix. */
static int ar__conv_pointwise(const ar__conv *q) { return q->kh * q->kw == 1 && !q->top && !q->left; }

static ar__conv ar__conv_geom(const ar_tensor *x, const ar_tensor *Wt, int top, int left, int dil, int taps)
{
    ar__conv q;
    q.H = x->nd == 4 ? x->shape[1] : 1;
    q.W = x->shape[x->nd - 2];
    q.Ci = x->shape[x->nd - 1];
    q.kh = Wt->nd == 4 ? Wt->shape[1] : 1;
    q.kw = Wt->shape[Wt->nd - 2];
    q.top = top; q.left = left; q.dil = dil;
    q.taps = taps ? taps : q.kh * q.kw;
    return q;
}

/* The column of output (r, c) in one image img [H,W,Ci]: the taps' input
   vectors one after another, zero outside the image. add = 1 scatters a
   column's gradient back into img instead (the backward pass). */
static void ar__conv_col(const ar__conv *q, float *img, int r, int c, float *col, int add)
{
    int tap, ch;
    for (tap = 0; tap < q->taps; tap++, col += q->Ci) {
        int y = r - q->top + (tap / q->kw) * q->dil, x = c - q->left + (tap % q->kw) * q->dil;
        float *src;
        if (y < 0 || y >= q->H || x < 0 || x >= q->W) {
            if (!add) memset(col, 0, (size_t)q->Ci * sizeof(float));
            continue;
        }
        src = img + ((size_t)y * q->W + x) * q->Ci; /* formed only inside the image */
        if (!add) memcpy(col, src, (size_t)q->Ci * sizeof(float));
        else
            for (ch = 0; ch < q->Ci; ch++) src[ch] += col[ch];
    }
}

/* y[rows, Co] = b + cols[rows, taps*Ci] W^T, W's rows k*k*Ci long of which
   the first taps*Ci are used (the rest is masked out). */
static void ar__conv_gemm(const ar__conv *q, int rows, const float *cols, const float *Wt, const float *b, int Co,
                          float *y)
{
    int r, K = q->taps * q->Ci;
    for (r = 0; b && r < rows; r++) memcpy(y + (size_t)r * Co, b, (size_t)Co * sizeof(float));
    ar__gemm(0, 1, rows, Co, K, 1, cols, K, Wt, q->kh * q->kw * q->Ci, b ? 1.0f : 0.0f, y, Co);
}

static ar_tensor *ar__conv_node(ar_graph *g, const char *fn, int nd, ar_tensor *x, ar_tensor *Wt, ar_tensor *b,
                                int top, int left, int dil, int taps)
{
    int Co, shape[4];
    size_t rows, r, K;
    ar__conv q;
    ar_tensor *t;
    if (!ar__check(g, fn, x, Wt, 2)) return NULL;
    if (x->nd != nd || Wt->nd != nd || Wt->shape[nd - 1] != x->shape[nd - 1] ||
        (b && (b->nd != 1 || b->shape[0] != Wt->shape[0]))) {
        ar__fail(g, AR_ERR_SHAPE, "%s: need x [N,%sCi], W [Co,%sCi] and b [Co] with matching Ci and Co", fn,
                 nd == 4 ? "H,W," : "T,", nd == 4 ? "kh,kw," : "k,");
        return NULL;
    }
    q = ar__conv_geom(x, Wt, top, left, dil, taps);
    if (dil < 1 || top < 0 || left < 0 || taps < 0 || taps > q.kh * q.kw || top > (1 << 20) || left > (1 << 20) ||
        dil > (1 << 20)) {
        ar__fail(g, AR_ERR_ARG, "%s: dilation %d must be >= 1, offsets (%d, %d) >= 0 and taps %d in [0, %d]", fn, dil,
                 top, left, taps, q.kh * q.kw);
        return NULL;
    }
    Co = Wt->shape[0];
    K = (size_t)q.taps * q.Ci;
    rows = x->n / (size_t)q.Ci;
    if (rows > 0x7fffffff || K > 0x7fffffff) { ar__fail(g, AR_ERR_RANGE, "%s: too many rows for BLAS", fn); return NULL; }
    memcpy(shape, x->shape, sizeof(int) * (size_t)nd);
    shape[nd - 1] = Co;
    t = ar__node(g, AR_OP_CONV, nd, shape, x, Wt, b, NULL);
    if (!t) return NULL;
    t->ip[0] = top; t->ip[1] = left; t->ip[2] = dil; t->ip[3] = q.taps;
    if (ar__conv_pointwise(&q)) { /* x is its own column matrix */
        ar__conv_gemm(&q, (int)rows, x->x, Wt->x, b ? b->x : NULL, Co, t->x);
        return t;
    }
    /* the columns (kept for dW), and room for their gradient when x needs one */
    t->save = (float *)ar_graph_alloc(g, rows * K * ((x->flags & AR_F_GRAD) ? 2 : 1) * sizeof(float));
    if (!t->save) { ar__fail(g, AR_ERR_NOMEM, "%s: out of memory", fn); return NULL; }
    for (r = 0; r < rows; r++) {
        size_t img = r / ((size_t)q.H * q.W), pos = r % ((size_t)q.H * q.W);
        ar__conv_col(&q, x->x + img * q.H * q.W * q.Ci, (int)(pos / q.W), (int)(pos % q.W), t->save + r * K, 0);
    }
    ar__conv_gemm(&q, (int)rows, t->save, Wt->x, b ? b->x : NULL, Co, t->x);
    return t;
}

ARDEF ar_tensor *ar_conv2d(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, int top, int left, int dilation,
                           int taps)
{
    return ar__conv_node(g, "ar_conv2d", 4, x, W, b, top, left, dilation, taps);
}

ARDEF ar_tensor *ar_conv1d(ar_graph *g, ar_tensor *x, ar_tensor *W, ar_tensor *b, int dilation, int shift)
{
    int k = W && W->nd == 3 ? W->shape[1] : 1;
    if (shift < 0 || shift > 1 || dilation < 1 || dilation > (1 << 20)) {
        if (ar__check(g, "ar_conv1d", x, W, 2))
            ar__fail(g, AR_ERR_ARG, "ar_conv1d: dilation %d must be >= 1 and shift %d 0 or 1", dilation, shift);
        return NULL;
    }
    return ar__conv_node(g, "ar_conv1d", 3, x, W, b, 0, (k - 1) * dilation + shift, dilation, 0);
}

static void ar__conv_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0], *Wt = t->src[1], *b = t->src[2];
    float *dx = AR__DX(x), *dW = AR__DX(Wt), *db = AR__DX(b);
    ar__conv q = ar__conv_geom(x, Wt, t->ip[0], t->ip[1], t->ip[2], t->ip[3]);
    int Co = Wt->shape[0], K = q.taps * q.Ci, ldw = q.kh * q.kw * q.Ci, j, pointwise = ar__conv_pointwise(&q);
    size_t rows = x->n / (size_t)q.Ci, r;
    if (dW) ar__gemm(1, 0, Co, K, (int)rows, 1, t->g, Co, pointwise ? x->x : t->save, K, 1, dW, ldw); /* dY^T cols */
    if (db)
        for (r = 0; r < rows; r++)
            for (j = 0; j < Co; j++) db[j] += t->g[r * Co + j];
    if (dx && pointwise) {
        ar__gemm(0, 0, (int)rows, K, Co, 1, t->g, Co, Wt->x, ldw, 1, dx, K);
    } else if (dx) { /* dcols = dY W, then scattered back to the input positions */
        float *dcols = t->save + rows * (size_t)K;
        ar__gemm(0, 0, (int)rows, K, Co, 1, t->g, Co, Wt->x, ldw, 0, dcols, K);
        for (r = 0; r < rows; r++) {
            size_t img = r / ((size_t)q.H * q.W), pos = r % ((size_t)q.H * q.W);
            ar__conv_col(&q, dx + img * q.H * q.W * q.Ci, (int)(pos / q.W), (int)(pos % q.W), dcols + r * K, 1);
        }
    }
}

/* ---- gated activation: [..., 2F] -> tanh(first F) * sigmoid(last F) ------- */

/* tanh(v) = 2 sigmoid(2v) - 1: the inline sigmoid vectorizes, tanhf does not */
static float ar__tanh_fast(float v) { return 2 * ar__sigmoid(2 * v) - 1; }

static void ar__gate_row(const float *a, int F, float *y)
{
    int j;
    for (j = 0; j < F; j++) y[j] = ar__tanh_fast(a[j]) * ar__sigmoid(a[F + j]);
}

ARDEF ar_tensor *ar_gate(ar_graph *g, ar_tensor *x)
{
    int shape[AR_MAX_DIM], F;
    size_t r, rows;
    ar_tensor *t;
    if (!ar__check(g, "ar_gate", x, NULL, 1)) return NULL;
    if (x->shape[x->nd - 1] % 2) {
        ar__fail(g, AR_ERR_SHAPE, "ar_gate: last dim %d must be even (filter and gate halves)", x->shape[x->nd - 1]);
        return NULL;
    }
    memcpy(shape, x->shape, sizeof(int) * (size_t)x->nd);
    F = shape[x->nd - 1] /= 2;
    t = ar__node(g, AR_OP_GATE, x->nd, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    rows = t->n / (size_t)F;
    for (r = 0; r < rows; r++) ar__gate_row(x->x + r * 2 * F, F, t->x + r * F);
    return t;
}

static void ar__gate_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0];
    int F = t->shape[t->nd - 1], j;
    size_t r, rows = t->n / (size_t)F;
    for (r = 0; r < rows; r++) {
        const float *a = x->x + r * 2 * F, *dy = t->g + r * F;
        float *da = x->g + r * 2 * F;
        for (j = 0; j < F; j++) {
            float th = ar__tanh_fast(a[j]), s = ar__sigmoid(a[F + j]);
            da[j] += dy[j] * s * (1 - th * th);
            da[F + j] += dy[j] * th * s * (1 - s);
        }
    }
}

/* ---- elementwise binary with b broadcast over a's leading dims --------- */

static ar_tensor *ar__binary(ar_graph *g, ar_op op, ar_tensor *a, ar_tensor *b)
{
    size_t inner, i, j, outer;
    int k, ok;
    ar_tensor *t;
    if (!ar__check(g, ar_op_name(op), a, b, 2)) return NULL;
    ok = b->n == 1 || b->nd <= a->nd;
    for (k = 0; ok && b->n != 1 && k < b->nd; k++) ok = b->shape[b->nd - 1 - k] == a->shape[a->nd - 1 - k];
    if (!ok) {
        char as[64], bs[64];
        ar__shape_str(a, as, sizeof as);
        ar__shape_str(b, bs, sizeof bs);
        ar__fail(g, AR_ERR_SHAPE, "%s: a%s b%s; b must match a's trailing dims or have one element",
                 ar_op_name(op), as, bs);
        return NULL;
    }
    t = ar__node(g, op, a->nd, a->shape, a, b, NULL, NULL);
    if (!t) return NULL;
    inner = b->n;
    outer = a->n / inner;
    for (i = 0; i < outer; i++) {
        const float *x = a->x + i * inner;
        float *y = t->x + i * inner;
        if (op == AR_OP_ADD) for (j = 0; j < inner; j++) y[j] = x[j] + b->x[j];
        else if (op == AR_OP_SUB) for (j = 0; j < inner; j++) y[j] = x[j] - b->x[j];
        else for (j = 0; j < inner; j++) y[j] = x[j] * b->x[j];
    }
    return t;
}

static void ar__binary_bwd(ar_tensor *t)
{
    ar_tensor *a = t->src[0], *b = t->src[1];
    float *da = AR__DX(a), *db = AR__DX(b);
    size_t inner = b->n, outer = a->n / inner, i, j;
    float sb = t->op == AR_OP_SUB ? -1.0f : 1.0f;
    for (i = 0; i < outer; i++) {
        const float *dy = t->g + i * inner, *x = a->x + i * inner;
        if (t->op == AR_OP_MUL) {
            if (da) for (j = 0; j < inner; j++) da[i * inner + j] += dy[j] * b->x[j];
            if (db) for (j = 0; j < inner; j++) db[j] += dy[j] * x[j];
        } else {
            if (da) for (j = 0; j < inner; j++) da[i * inner + j] += dy[j];
            if (db) for (j = 0; j < inner; j++) db[j] += sb * dy[j];
        }
    }
}
#define ar__add_bwd ar__binary_bwd
#define ar__sub_bwd ar__binary_bwd
#define ar__mul_bwd ar__binary_bwd

ARDEF ar_tensor *ar_add(ar_graph *g, ar_tensor *a, ar_tensor *b) { return ar__binary(g, AR_OP_ADD, a, b); }
ARDEF ar_tensor *ar_sub(ar_graph *g, ar_tensor *a, ar_tensor *b) { return ar__binary(g, AR_OP_SUB, a, b); }
ARDEF ar_tensor *ar_mul(ar_graph *g, ar_tensor *a, ar_tensor *b) { return ar__binary(g, AR_OP_MUL, a, b); }

/* ---- scale -------------------------------------------------------------- */

ARDEF ar_tensor *ar_scale(ar_graph *g, ar_tensor *x, float s)
{
    ar_tensor *t;
    size_t i;
    if (!ar__check(g, "ar_scale", x, NULL, 1)) return NULL;
    t = ar__node(g, AR_OP_SCALE, x->nd, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = s;
    for (i = 0; i < t->n; i++) t->x[i] = s * x->x[i];
    return t;
}

static void ar__scale_bwd(ar_tensor *t)
{
    size_t i;
    for (i = 0; i < t->n; i++) t->src[0]->g[i] += t->fp[0] * t->g[i];
}

/* ---- sum / mean over one axis: x viewed as [outer, len, inner] ---------- */

static void ar__axis_split(const ar_tensor *x, int axis, size_t *outer, size_t *len, size_t *inner)
{
    int i;
    if (axis == AR_ALL) { *outer = 1; *len = x->n; *inner = 1; return; }
    *outer = *inner = 1;
    for (i = 0; i < axis; i++) *outer *= (size_t)x->shape[i];
    *len = (size_t)x->shape[axis];
    for (i = axis + 1; i < x->nd; i++) *inner *= (size_t)x->shape[i];
}

static ar_tensor *ar__reduce(ar_graph *g, ar_op op, ar_tensor *x, int axis)
{
    int shape[AR_MAX_DIM], nd = 0, i;
    size_t outer, len, inner, o, l, k;
    ar_tensor *t;
    if (!ar__check(g, ar_op_name(op), x, NULL, 1)) return NULL;
    if (axis != AR_ALL && (axis < 0 || axis >= x->nd)) {
        ar__fail(g, AR_ERR_ARG, "%s: axis %d out of range for rank %d", ar_op_name(op), axis, x->nd);
        return NULL;
    }
    for (i = 0; axis != AR_ALL && i < x->nd; i++)
        if (i != axis) shape[nd++] = x->shape[i];
    if (nd == 0) shape[nd++] = 1;
    t = ar__node(g, op, nd, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = axis;
    ar__axis_split(x, axis, &outer, &len, &inner);
    t->fp[0] = op == AR_OP_MEAN ? 1.0f / (float)len : 1.0f;
    for (o = 0; o < outer; o++)
        for (k = 0; k < inner; k++) {
            double s = 0; /* double: sums decide reported likelihoods */
            for (l = 0; l < len; l++) s += x->x[(o * len + l) * inner + k];
            t->x[o * inner + k] = (float)(s * t->fp[0]);
        }
    return t;
}

static void ar__reduce_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0];
    size_t outer, len, inner, o, l, k;
    ar__axis_split(x, t->ip[0], &outer, &len, &inner);
    for (o = 0; o < outer; o++)
        for (l = 0; l < len; l++)
            for (k = 0; k < inner; k++) x->g[(o * len + l) * inner + k] += t->fp[0] * t->g[o * inner + k];
}
#define ar__sum_bwd ar__reduce_bwd
#define ar__mean_bwd ar__reduce_bwd

ARDEF ar_tensor *ar_sum(ar_graph *g, ar_tensor *x, int axis) { return ar__reduce(g, AR_OP_SUM, x, axis); }
ARDEF ar_tensor *ar_mean(ar_graph *g, ar_tensor *x, int axis) { return ar__reduce(g, AR_OP_MEAN, x, axis); }

/* ---- unary elementwise: name, OP, y = f(v), dy/dv from v and y ---------- */

#define AR__UNARY(X)                                                        \
    X(sigmoid, SIGMOID, ar__sigmoid(v), y * (1.0f - y))                     \
    X(tanh, TANH, tanhf(v), 1.0f - y * y)                                   \
    X(relu, RELU, v > 0 ? v : 0.0f, v > 0 ? 1.0f : 0.0f)                    \
    X(gelu, GELU, ar__gelu(v), ar__gelu_grad(v))                            \
    X(softplus, SOFTPLUS, ar__softplus(v), ar__sigmoid(v))                  \
    X(exp, EXP, ar__expf(v), y)                                                 \
    X(log, LOG, logf(v), 1.0f / v)                                          \
    X(log_sigmoid, LOG_SIGMOID, -ar__softplus(-v), ar__sigmoid(-v))

#define AR__DEF_UNARY(name, E, f, df)                                        \
    ARDEF ar_tensor *ar_##name(ar_graph *g, ar_tensor *x)                   \
    {                                                                        \
        ar_tensor *t;                                                        \
        size_t i;                                                            \
        if (!ar__check(g, "ar_" #name, x, NULL, 1)) return NULL;             \
        t = ar__node(g, AR_OP_##E, x->nd, x->shape, x, NULL, NULL, NULL);    \
        if (t)                                                               \
            for (i = 0; i < t->n; i++) {                                     \
                float v = x->x[i];                                           \
                t->x[i] = f;                                                 \
            }                                                                \
        return t;                                                            \
    }                                                                        \
    static void ar__##name##_bwd(ar_tensor *t)                              \
    {                                                                        \
        ar_tensor *s = t->src[0];                                            \
        size_t i;                                                            \
        for (i = 0; i < t->n; i++) {                                         \
            float v = s->x[i], y = t->x[i];                                  \
            (void)v; (void)y;                                                \
            s->g[i] += t->g[i] * (df);                                       \
        }                                                                    \
    }
AR__UNARY(AR__DEF_UNARY)
#undef AR__DEF_UNARY

/* ---- softmax family over the last axis ---------------------------------- */

static ar_tensor *ar__rowwise(ar_graph *g, ar_op op, ar_tensor *x)
{
    int shape[AR_MAX_DIM], nd = x ? x->nd : 0, C;
    size_t r, j;
    ar_tensor *t;
    if (!ar__check(g, ar_op_name(op), x, NULL, 1)) return NULL;
    if (op == AR_OP_LOGSUMEXP) nd = ar__drop_last(x, shape);
    else memcpy(shape, x->shape, sizeof shape);
    t = ar__node(g, op, nd, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    C = AR__LAST(x);
    for (r = 0; r < AR__ROWS(x); r++) {
        const float *xr = x->x + r * C;
        float lse = ar__softmax_into(xr, (size_t)C, op == AR_OP_SOFTMAX ? t->x + r * C : NULL);
        if (op == AR_OP_LOGSUMEXP) t->x[r] = lse;
        else if (op == AR_OP_LOG_SOFTMAX) /* a fully masked row stays -inf */
            for (j = 0; j < (size_t)C; j++) t->x[r * C + j] = lse == -INFINITY ? -INFINITY : xr[j] - lse;
    }
    return t;
}

static void ar__rowwise_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0];
    int C = AR__LAST(x);
    size_t r, j;
    for (r = 0; r < AR__ROWS(x); r++) {
        const float *y = t->x + r * C, *dy = t->g + r * C, *xr = x->x + r * C;
        float *dx = x->g + r * C;
        double s = 0;
        if (t->op == AR_OP_LOGSUMEXP) { /* dx = dy * softmax(x) */
            if (t->x[r] == -INFINITY) continue;
            for (j = 0; j < (size_t)C; j++) dx[j] += t->g[r] * ar__expf(xr[j] - t->x[r]);
        } else if (t->op == AR_OP_SOFTMAX) { /* dx = y (dy - <dy,y>) */
            for (j = 0; j < (size_t)C; j++) s += dy[j] * y[j];
            for (j = 0; j < (size_t)C; j++) dx[j] += y[j] * (dy[j] - (float)s);
        } else { /* log-softmax: dx = dy - softmax * sum(dy) */
            for (j = 0; j < (size_t)C; j++) s += dy[j];
            for (j = 0; j < (size_t)C; j++) dx[j] += dy[j] - ar__expf(y[j]) * (float)s;
        }
    }
}
#define ar__softmax_bwd ar__rowwise_bwd
#define ar__log_softmax_bwd ar__rowwise_bwd
#define ar__logsumexp_bwd ar__rowwise_bwd

ARDEF ar_tensor *ar_softmax(ar_graph *g, ar_tensor *x) { return ar__rowwise(g, AR_OP_SOFTMAX, x); }
ARDEF ar_tensor *ar_log_softmax(ar_graph *g, ar_tensor *x) { return ar__rowwise(g, AR_OP_LOG_SOFTMAX, x); }
ARDEF ar_tensor *ar_logsumexp(ar_graph *g, ar_tensor *x) { return ar__rowwise(g, AR_OP_LOGSUMEXP, x); }

/* ---- causal softmax: scale, mask j > t and softmax in one pass ----------- */

/* Softmax over s[0..n) in place and zeros over s[n..len); returns the log
   normalizer. */
static float ar__softmax_prefix(float *s, int n, int len)
{
    float lse = ar__softmax_into(s, (size_t)n, s);
    int j;
    for (j = n; j < len; j++) s[j] = 0;
    return lse;
}

ARDEF ar_tensor *ar_causal_softmax(ar_graph *g, ar_tensor *x, float scale)
{
    return ar_causal_softmax_order(g, x, scale, NULL);
}

ARDEF ar_tensor *ar_causal_softmax_order(ar_graph *g, ar_tensor *x, float scale, const int *rank)
{
    ar_tensor *t;
    int T;
    size_t r, j;
    if (!ar__check(g, "ar_causal_softmax", x, NULL, 1)) return NULL;
    if (x->nd < 2 || x->shape[x->nd - 1] != x->shape[x->nd - 2]) {
        ar__fail(g, AR_ERR_SHAPE, "ar_causal_softmax: need [...,T,T] scores");
        return NULL;
    }
    T = AR__LAST(x);
    if (rank) {
        int *inv = (int *)ar_graph_alloc(g, (size_t)T * sizeof(int)), bad = inv ? ar__perm_bad(rank, T, inv) : -2;
        if (bad != -1) {
            if (bad == -2) ar__fail(g, AR_ERR_NOMEM, "ar_causal_softmax_order: out of memory");
            else ar__fail(g, AR_ERR_ARG, "ar_causal_softmax_order: rank is not a permutation of [0,%d) (rank[%d] = %d)",
                          T, bad, rank[bad]);
            return NULL;
        }
    }
    t = ar__node(g, AR_OP_CAUSAL_SOFTMAX, x->nd, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->fp[0] = scale;
    t->aux = rank;
    for (r = 0; r < AR__ROWS(x); r++) { /* query q = r % T sees keys 0..q, or those ranked <= q's rank */
        const float *xr = x->x + r * T;
        float *y = t->x + r * T;
        size_t q = r % (size_t)T;
        if (!rank) {
            for (j = 0; j <= q; j++) y[j] = scale * xr[j];
            ar__softmax_prefix(y, (int)q + 1, T);
            continue;
        }
        for (j = 0; j < (size_t)T; j++) y[j] = rank[j] <= rank[q] ? scale * xr[j] : -INFINITY;
        ar__softmax_prefix(y, T, T);
    }
    return t;
}

static void ar__causal_softmax_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0];
    int T = AR__LAST(x);
    size_t r, j;
    for (r = 0; r < AR__ROWS(x); r++) { /* dx = scale y (dy - <dy,y>) over the kept keys */
        const float *y = t->x + r * T, *dy = t->g + r * T;
        float *dx = x->g + r * T;
        size_t n = t->aux ? (size_t)T : r % (size_t)T + 1; /* masked keys have y = 0: no gradient */
        double s = 0;
        for (j = 0; j < n; j++) s += dy[j] * y[j];
        for (j = 0; j < n; j++) dx[j] += t->fp[0] * y[j] * (dy[j] - (float)s);
    }
}

/* ---- layernorm over the last axis --------------------------------------- */

/* One row of layernorm: y = (x - mean) / std * gain + bias (gain, bias may
   be NULL); mean and 1/std into stats[0..1] if stats is not NULL. */
static void ar__ln_row(const float *x, const float *gain, const float *bias, float *y, int C, float eps, float *stats)
{
    double s = 0, ss = 0;
    float mu, rstd;
    int j;
    for (j = 0; j < C; j++) s += x[j];
    mu = (float)(s / C);
    for (j = 0; j < C; j++) ss += (double)(x[j] - mu) * (x[j] - mu);
    rstd = (float)(1.0 / sqrt(ss / C + eps));
    if (stats) { stats[0] = mu; stats[1] = rstd; }
    for (j = 0; j < C; j++) y[j] = (x[j] - mu) * rstd * (gain ? gain[j] : 1.0f) + (bias ? bias[j] : 0.0f);
}

ARDEF ar_tensor *ar_layernorm(ar_graph *g, ar_tensor *x, ar_tensor *gain, ar_tensor *bias, float eps)
{
    ar_tensor *t;
    int C;
    size_t r, rows;
    if (!ar__check(g, "ar_layernorm", x, NULL, 1)) return NULL;
    C = AR__LAST(x);
    if ((gain && gain->n != (size_t)C) || (bias && bias->n != (size_t)C)) {
        ar__fail(g, AR_ERR_SHAPE, "ar_layernorm: gain/bias must have %d elements (the last dim of x)", C);
        return NULL;
    }
    if (!(eps > 0)) { ar__fail(g, AR_ERR_ARG, "ar_layernorm: eps must be > 0"); return NULL; }
    t = ar__node(g, AR_OP_LAYERNORM, x->nd, x->shape, x, gain, bias, NULL);
    if (!t) return NULL;
    rows = AR__ROWS(x);
    t->save = (float *)ar_graph_alloc(g, 2 * rows * sizeof(float)); /* mean, 1/std per row */
    if (!t->save) { ar__fail(g, AR_ERR_NOMEM, "ar_layernorm: out of memory"); return NULL; }
    for (r = 0; r < rows; r++)
        ar__ln_row(x->x + r * C, gain ? gain->x : NULL, bias ? bias->x : NULL, t->x + r * C, C, eps, t->save + 2 * r);
    return t;
}

static void ar__layernorm_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0], *gain = t->src[1], *bias = t->src[2];
    float *dx = AR__DX(x), *dgain = AR__DX(gain), *dbias = AR__DX(bias);
    int C = AR__LAST(x);
    size_t r, j;
    for (r = 0; r < AR__ROWS(x); r++) {
        const float *xr = x->x + r * C, *dy = t->g + r * C;
        float mu = t->save[2 * r], rstd = t->save[2 * r + 1];
        double m1 = 0, m2 = 0; /* means of dxhat and dxhat*xhat */
        for (j = 0; j < (size_t)C; j++) {
            float xh = (xr[j] - mu) * rstd, dxh = dy[j] * (gain ? gain->x[j] : 1.0f);
            m1 += dxh;
            m2 += dxh * xh;
            if (dgain) dgain[j] += dy[j] * xh;
            if (dbias) dbias[j] += dy[j];
        }
        m1 /= C;
        m2 /= C;
        /* dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
        if (dx)
            for (j = 0; j < (size_t)C; j++) {
                float xh = (xr[j] - mu) * rstd, dxh = dy[j] * (gain ? gain->x[j] : 1.0f);
                dx[r * C + j] += rstd * (dxh - (float)m1 - xh * (float)m2);
            }
    }
}

/* ---- embedding: W[V,C] gathered by ids ---------------------------------- */

ARDEF ar_tensor *ar_embedding(ar_graph *g, ar_tensor *W, const int *ids, int nd, const int *shape)
{
    int oshape[AR_MAX_DIM], i, V, C;
    size_t n, k;
    ar_tensor *t;
    if (!ar__check(g, "ar_embedding", W, NULL, 1)) return NULL;
    if (W->nd != 2) { ar__fail(g, AR_ERR_SHAPE, "ar_embedding: W must be [V,C], has rank %d", W->nd); return NULL; }
    n = ar__numel(nd, shape);
    if (!ids || !n || nd >= AR_MAX_DIM) {
        ar__fail(g, AR_ERR_ARG, "ar_embedding: need ids and a valid shape of rank < %d", AR_MAX_DIM);
        return NULL;
    }
    V = W->shape[0];
    C = W->shape[1];
    for (k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= V) {
            ar__fail(g, AR_ERR_RANGE, "ar_embedding: ids[%zu] = %d is outside [0,%d)", k, ids[k], V);
            return NULL;
        }
    for (i = 0; i < nd; i++) oshape[i] = shape[i];
    oshape[nd] = C;
    t = ar__node(g, AR_OP_EMBEDDING, nd + 1, oshape, W, NULL, NULL, NULL);
    if (!t) return NULL;
    t->aux = ids;
    for (k = 0; k < n; k++) memcpy(t->x + k * C, W->x + (size_t)ids[k] * C, (size_t)C * sizeof(float));
    return t;
}

static void ar__embedding_bwd(ar_tensor *t)
{
    const int *ids = (const int *)t->aux;
    int C = t->src[0]->shape[1], j;
    size_t k;
    for (k = 0; k < t->n / (size_t)C; k++)
        for (j = 0; j < C; j++) t->src[0]->g[(size_t)ids[k] * C + j] += t->g[k * C + j];
}

/* ---- slice / concat / reshape ------------------------------------------- */

/* Copies `len` of `total` along an axis, starting at `at`, between a block of
   a [outer, total, inner] tensor and a [outer, len, inner] one. */
static void ar__axis_copy(float *big, float *small, size_t outer, size_t total, size_t at, size_t len,
                          size_t inner, int to_small, int accumulate)
{
    size_t o, k, m = len * inner;
    for (o = 0; o < outer; o++) {
        float *b = big + (o * total + at) * inner, *s = small + o * m;
        if (to_small) memcpy(s, b, m * sizeof(float));
        else if (accumulate) for (k = 0; k < m; k++) s[k] += b[k];
        else memcpy(b, s, m * sizeof(float));
    }
}

ARDEF ar_tensor *ar_slice(ar_graph *g, ar_tensor *x, int axis, int start, int len)
{
    int shape[AR_MAX_DIM];
    size_t outer, total, inner;
    ar_tensor *t;
    if (!ar__check(g, "ar_slice", x, NULL, 1)) return NULL;
    if (axis < 0 || axis >= x->nd || start < 0 || len < 1 || start > x->shape[axis] - len) {
        ar__fail(g, AR_ERR_ARG, "ar_slice: [%d, %d+%d) on axis %d is outside a rank-%d tensor (dim %d)", start,
                 start, len, axis, x->nd, axis >= 0 && axis < x->nd ? x->shape[axis] : 0);
        return NULL;
    }
    memcpy(shape, x->shape, sizeof shape);
    shape[axis] = len;
    t = ar__node(g, AR_OP_SLICE, x->nd, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = axis;
    t->ip[1] = start;
    ar__axis_split(x, axis, &outer, &total, &inner);
    ar__axis_copy(x->x, t->x, outer, total, (size_t)start, (size_t)len, inner, 1, 0);
    return t;
}

static void ar__slice_bwd(ar_tensor *t)
{
    ar_tensor *x = t->src[0];
    size_t outer, total, inner, o, k, m = (size_t)t->shape[t->ip[0]];
    ar__axis_split(x, t->ip[0], &outer, &total, &inner);
    m *= inner;
    for (o = 0; o < outer; o++) {
        float *dx = x->g + (o * total + (size_t)t->ip[1]) * inner;
        const float *dy = t->g + o * m;
        for (k = 0; k < m; k++) dx[k] += dy[k];
    }
}

ARDEF ar_tensor *ar_concat(ar_graph *g, ar_tensor *a, ar_tensor *b, int axis)
{
    int shape[AR_MAX_DIM], i;
    size_t outer, total, inner, la, lb;
    ar_tensor *t;
    if (!ar__check(g, "ar_concat", a, b, 2)) return NULL;
    if (axis < 0 || axis >= a->nd || a->nd != b->nd) {
        ar__fail(g, AR_ERR_SHAPE, "ar_concat: axis %d with ranks %d and %d", axis, a->nd, b->nd);
        return NULL;
    }
    for (i = 0; i < a->nd; i++)
        if (i != axis && a->shape[i] != b->shape[i]) {
            ar__fail(g, AR_ERR_SHAPE, "ar_concat: dim %d differs (%d vs %d)", i, a->shape[i], b->shape[i]);
            return NULL;
        }
    memcpy(shape, a->shape, sizeof shape);
    if (a->shape[axis] > 0x7fffffff - b->shape[axis]) {
        ar__fail(g, AR_ERR_RANGE, "ar_concat: concatenated dim overflows int");
        return NULL;
    }
    shape[axis] = a->shape[axis] + b->shape[axis];
    t = ar__node(g, AR_OP_CONCAT, a->nd, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = axis;
    ar__axis_split(t, axis, &outer, &total, &inner);
    la = (size_t)a->shape[axis];
    lb = (size_t)b->shape[axis];
    ar__axis_copy(t->x, a->x, outer, total, 0, la, inner, 0, 0);
    ar__axis_copy(t->x, b->x, outer, total, la, lb, inner, 0, 0);
    return t;
}

static void ar__concat_bwd(ar_tensor *t)
{
    ar_tensor *a = t->src[0], *b = t->src[1];
    size_t outer, total, inner, la = (size_t)a->shape[t->ip[0]];
    ar__axis_split(t, t->ip[0], &outer, &total, &inner);
    if (AR__DX(a)) ar__axis_copy(t->g, a->g, outer, total, 0, la, inner, 0, 1);
    if (AR__DX(b)) ar__axis_copy(t->g, b->g, outer, total, la, total - la, inner, 0, 1);
}

ARDEF ar_tensor *ar_reshape(ar_graph *g, ar_tensor *x, int nd, const int *shape)
{
    if (!ar__check(g, "ar_reshape", x, NULL, 1)) return NULL;
    if (ar__numel(nd, shape) != x->n) {
        ar__fail(g, AR_ERR_SHAPE, "ar_reshape: new shape has a different element count (tensor has %zu)", x->n);
        return NULL;
    }
    return ar__node(g, AR_OP_RESHAPE, nd, shape, x, NULL, NULL, x->x); /* shares the values */
}

static void ar__reshape_bwd(ar_tensor *t)
{
    size_t i;
    for (i = 0; i < t->n; i++) t->src[0]->g[i] += t->g[i];
}

/* Walks t (a permute's output) in order while tracking the matching input
   offset through the input's strides taken in output axis order: forward
   gathers dst[o] = src[i], backward scatter-adds dst[i] += src[o]. */
static void ar__permute_copy(const ar_tensor *t, const float *src, float *dst, int backward)
{
    const ar_tensor *x = t->src[0];
    size_t istride[AR_MAX_DIM], st[AR_MAX_DIM], o, i = 0;
    int idx[AR_MAX_DIM] = {0}, d, k;
    for (d = x->nd - 1, o = 1; d >= 0; d--) { istride[d] = o; o *= (size_t)x->shape[d]; }
    for (k = 0; k < t->nd; k++) st[k] = istride[t->ip[k]];
    for (o = 0; o < t->n; o++) {
        if (backward) dst[i] += src[o]; /* dst = dx, src = dy */
        else dst[o] = src[i];
        for (k = t->nd - 1; k >= 0; k--) { /* odometer over the output index */
            i += st[k];
            if (++idx[k] < t->shape[k]) break;
            i -= st[k] * (size_t)t->shape[k];
            idx[k] = 0;
        }
    }
}

ARDEF ar_tensor *ar_permute(ar_graph *g, ar_tensor *x, const int *perm)
{
    int shape[AR_MAX_DIM], inv[AR_MAX_DIM], k;
    ar_tensor *t;
    if (!ar__check(g, "ar_permute", x, NULL, 1)) return NULL;
    if (!perm || ar__perm_bad(perm, x->nd, inv) != -1) {
        ar__fail(g, AR_ERR_ARG, "ar_permute: perm is not a permutation of the %d axes", x->nd);
        return NULL;
    }
    for (k = 0; k < x->nd; k++) shape[k] = x->shape[perm[k]];
    t = ar__node(g, AR_OP_PERMUTE, x->nd, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    for (k = 0; k < x->nd; k++) t->ip[k] = perm[k];
    ar__permute_copy(t, x->x, t->x, 0);
    return t;
}

static void ar__permute_bwd(ar_tensor *t) { ar__permute_copy(t, t->g, t->src[0]->g, 1); }

/* ---- rotary position embedding -------------------------------------------- */

/* cos and sin of position pos's angles pos * 10000^(-2i/dh), i < dh/2, as
   the pairs cs[2i], cs[2i+1]. */
static void ar__rope_angles(int pos, int dh, float *cs)
{
    int i;
    for (i = 0; i < dh / 2; i++) {
        double a = pos * pow(10000.0, -2.0 * i / dh);
        cs[2 * i] = (float)cos(a);
        cs[2 * i + 1] = (float)sin(a);
    }
}

/* Rotates the pairs (v[2i], v[2i+1]) by the angles cs; inverse rotates
   back (the backward: R^T). */
static void ar__rope_apply(float *v, int dh, const float *cs, int inverse)
{
    int i;
    for (i = 0; i < dh / 2; i++) {
        float c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1], x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
    }
}

ARDEF ar_tensor *ar_rope(ar_graph *g, ar_tensor *x, int offset)
{
    ar_tensor *t;
    int dh, n;
    size_t r;
    if (!ar__check(g, "ar_rope", x, NULL, 1)) return NULL;
    if (x->nd < 2 || AR__LAST(x) % 2 || AR__LAST(x) > 4096 || offset < 0) {
        ar__fail(g, AR_ERR_SHAPE, "ar_rope: need [...,n,dh] with dh even and at most 4096, and offset >= 0");
        return NULL;
    }
    t = ar__node(g, AR_OP_ROPE, x->nd, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    dh = AR__LAST(x);
    n = x->shape[x->nd - 2];
    /* the angles of each position once [n,dh], then a row of backward scratch */
    if (!(t->save = (float *)ar_graph_alloc(g, ((size_t)n + 1) * dh * sizeof(float)))) {
        ar__fail(g, AR_ERR_NOMEM, "ar_rope: out of memory");
        return NULL;
    }
    for (r = 0; r < (size_t)n; r++) ar__rope_angles((int)r + offset, dh, t->save + r * dh);
    memcpy(t->x, x->x, x->n * sizeof(float));
    for (r = 0; r < AR__ROWS(x); r++) ar__rope_apply(t->x + r * dh, dh, t->save + r % (size_t)n * dh, 0);
    return t;
}

static void ar__rope_bwd(ar_tensor *t)
{
    int dh = AR__LAST(t), n = t->shape[t->nd - 2], j;
    size_t r;
    float *row = t->save + (size_t)n * dh, *dx = t->src[0]->g;
    for (r = 0; r < AR__ROWS(t); r++) { /* dx = R^T dy: the inverse rotation */
        memcpy(row, t->g + r * dh, (size_t)dh * sizeof(float));
        ar__rope_apply(row, dh, t->save + r % (size_t)n * dh, 1);
        for (j = 0; j < dh; j++) dx[r * dh + j] += row[j];
    }
}

/* ---- attention: multi-head causal self-attention in one op --------------- */

/* Queries go in blocks of AR__ATT_ROWS: a block's weights [rows, n] stay in
   cache, and the n x n weights are never stored; the backward pass
   recomputes them from the saved log normalizers (as FlashAttention does). */
#define AR__ATT_ROWS 128

/* Queries of steps i0..i0+m-1 of one head against the keys and values of
   steps 0..i0+m-1: Q [m,dh], K and V [i0+m,dh]. Query i0+r sees keys up to
   step i0+r. P [m,i0+m] gets the weights, O [m,dh] = P V and lse [m] the
   log normalizers. */
static void ar__att_block(const float *Q, const float *K, const float *V, int i0, int m, int dh, float scale,
                          float *P, float *O, float *lse)
{
    int nk = i0 + m, r;
    ar__gemm(0, 1, m, nk, dh, scale, Q, dh, K, dh, 0, P, nk);
    for (r = 0; r < m; r++) lse[r] = ar__softmax_prefix(P + (size_t)r * nk, i0 + r + 1, nk);
    ar__gemm(0, 0, m, dh, nk, 1, P, nk, V, dh, 0, O, dh);
}

/* Shapes of an attention node; rows of one head are moved between the
   [B,n,...] tensors (positions) and [n,dh] buffers (generation steps). */
typedef struct { int B, n, d, H, dh, rotary; const int *order; float *cs, *buf; } ar__att;

static ar__att ar__att_dims(const ar_tensor *t)
{
    ar__att a;
    a.B = t->shape[0]; a.n = t->shape[1]; a.d = t->shape[2]; a.H = t->ip[0]; a.dh = a.d / a.H;
    a.rotary = t->ip[1];
    a.order = (const int *)t->aux;
    a.cs = a.rotary ? t->save + (size_t)a.B * a.H * a.n : NULL; /* after lse */
    a.buf = t->save + (size_t)a.B * a.H * a.n + (size_t)a.n * a.dh; /* after the rotations */
    return a;
}

/* dst[step t] = src[position of t] (rows ld apart), rotated by the position if rot. */
static void ar__att_get(const ar__att *a, const float *src, int ld, float *dst, int rot)
{
    int t;
    for (t = 0; t < a->n; t++) {
        int p = a->order ? a->order[t] : t;
        memcpy(dst + (size_t)t * a->dh, src + (size_t)p * ld, (size_t)a->dh * sizeof(float));
        if (rot) ar__rope_apply(dst + (size_t)t * a->dh, a->dh, a->cs + (size_t)p * a->dh, 0);
    }
}

/* dst[position of t] (+)= src[step t], rotated back first if rot (src is changed). */
static void ar__att_put(const ar__att *a, float *src, float *dst, int ld, int rot, int add)
{
    int t, j;
    for (t = 0; t < a->n; t++) {
        int p = a->order ? a->order[t] : t;
        float *s = src + (size_t)t * a->dh, *o = dst + (size_t)p * ld;
        if (rot) ar__rope_apply(s, a->dh, a->cs + (size_t)p * a->dh, 1);
        for (j = 0; j < a->dh; j++) o[j] = add ? o[j] + s[j] : s[j];
    }
}

ARDEF ar_tensor *ar_attention(ar_graph *g, ar_tensor *qkv, int heads, float scale, const int *rank, int rotary)
{
    ar_tensor *t;
    ar__att a;
    int shape[3], *order = NULL, b, h, i0, p;
    float *lse, *Q, *K, *V, *O, *P;
    if (!ar__check(g, "ar_attention", qkv, NULL, 1)) return NULL;
    if (qkv->nd != 3 || heads < 1 || AR__LAST(qkv) % (3 * heads) ||
        (rotary && ((AR__LAST(qkv) / (3 * heads)) % 2 || AR__LAST(qkv) / (3 * heads) > 4096))) {
        char xs[64];
        ar__shape_str(qkv, xs, sizeof xs);
        ar__fail(g, AR_ERR_SHAPE, "ar_attention: qkv%s with %d heads; need [B,n,3d] with d a multiple of heads "
                                  "(rotary: an even head size of at most 4096)", xs, heads);
        return NULL;
    }
    shape[0] = qkv->shape[0]; shape[1] = qkv->shape[1]; shape[2] = AR__LAST(qkv) / 3;
    if (rank) { /* its inverse: the position generated at each step */
        if (!(order = (int *)ar_graph_alloc(g, (size_t)shape[1] * sizeof(int)))) goto nomem;
        if ((p = ar__perm_bad(rank, shape[1], order)) != -1) {
            ar__fail(g, AR_ERR_ARG, "ar_attention: rank is not a permutation of [0,%d) (rank[%d] = %d)", shape[1], p,
                     rank[p]);
            return NULL;
        }
    }
    if (!(t = ar__node(g, AR_OP_ATTENTION, 3, shape, qkv, NULL, NULL, NULL))) return NULL;
    t->ip[0] = heads;
    t->ip[1] = rotary != 0;
    t->fp[0] = scale;
    t->aux = order;
    /* lse [B,H,n], rotations [n,dh] and room for the backward's buffers:
       seven [n,dh], two blocks of weights [rows,n] and n row sums */
    t->save = (float *)ar_graph_alloc(g, ((size_t)shape[0] * heads * shape[1] +
                                          (size_t)shape[1] * (8 * (size_t)(shape[2] / heads) + 2 * AR__ATT_ROWS + 1)) *
                                             sizeof(float));
    if (!t->save) goto nomem;
    a = ar__att_dims(t);
    for (p = 0; a.rotary && p < a.n; p++) ar__rope_angles(p, a.dh, a.cs + (size_t)p * a.dh);
    Q = a.buf; K = Q + (size_t)a.n * a.dh; V = K + (size_t)a.n * a.dh; O = V + (size_t)a.n * a.dh; P = O + (size_t)a.n * a.dh;
    for (b = 0; b < a.B; b++)
        for (h = 0; h < a.H; h++) {
            const float *x = qkv->x + (size_t)b * a.n * 3 * a.d + (size_t)h * a.dh;
            lse = t->save + ((size_t)b * a.H + h) * a.n;
            ar__att_get(&a, x, 3 * a.d, Q, a.rotary);
            ar__att_get(&a, x + a.d, 3 * a.d, K, a.rotary);
            ar__att_get(&a, x + 2 * a.d, 3 * a.d, V, 0);
            for (i0 = 0; i0 < a.n; i0 += AR__ATT_ROWS) {
                int m = a.n - i0 < AR__ATT_ROWS ? a.n - i0 : AR__ATT_ROWS;
                ar__att_block(Q + (size_t)i0 * a.dh, K, V, i0, m, a.dh, scale, P, O + (size_t)i0 * a.dh, lse + i0);
            }
            ar__att_put(&a, O, t->x + (size_t)b * a.n * a.d + (size_t)h * a.dh, a.d, 0, 0);
        }
    return t;
nomem:
    ar__fail(g, AR_ERR_NOMEM, "ar_attention: out of memory");
    return NULL;
}

static void ar__attention_bwd(ar_tensor *t)
{
    ar__att a = ar__att_dims(t);
    float scale = t->fp[0], *Q, *K, *V, *dO, *dQ, *dK, *dV, *P, *dP, *D;
    int b, h, i0, r, j;
    Q = a.buf; K = Q + (size_t)a.n * a.dh; V = K + (size_t)a.n * a.dh; dO = V + (size_t)a.n * a.dh;
    dQ = dO + (size_t)a.n * a.dh; dK = dQ + (size_t)a.n * a.dh; dV = dK + (size_t)a.n * a.dh;
    P = dV + (size_t)a.n * a.dh; dP = P + (size_t)AR__ATT_ROWS * a.n; D = dP + (size_t)AR__ATT_ROWS * a.n;
    for (b = 0; b < a.B; b++)
        for (h = 0; h < a.H; h++) {
            const float *x = t->src[0]->x + (size_t)b * a.n * 3 * a.d + (size_t)h * a.dh;
            float *dx = t->src[0]->g + (size_t)b * a.n * 3 * a.d + (size_t)h * a.dh;
            const float *lse = t->save + ((size_t)b * a.H + h) * a.n;
            size_t off = (size_t)b * a.n * a.d + (size_t)h * a.dh;
            ar__att_get(&a, x, 3 * a.d, Q, a.rotary);
            ar__att_get(&a, x + a.d, 3 * a.d, K, a.rotary);
            ar__att_get(&a, x + 2 * a.d, 3 * a.d, V, 0);
            ar__att_get(&a, t->g + off, a.d, dO, 0);
            ar__att_get(&a, t->x + off, a.d, dQ, 0); /* the output, for D = rowsum(dO * O) */
            for (r = 0; r < a.n; r++) {
                float s = 0;
                for (j = 0; j < a.dh; j++) s += dO[(size_t)r * a.dh + j] * dQ[(size_t)r * a.dh + j];
                D[r] = s;
            }
            memset(dQ, 0, 3 * (size_t)a.n * a.dh * sizeof(float)); /* dQ, dK, dV */
            for (i0 = 0; i0 < a.n; i0 += AR__ATT_ROWS) {
                int m = a.n - i0 < AR__ATT_ROWS ? a.n - i0 : AR__ATT_ROWS, nk = i0 + m;
                const float *Qb = Q + (size_t)i0 * a.dh, *dOb = dO + (size_t)i0 * a.dh;
                /* P again from the scores and lse; dS = P (dO V^T - D) into dP */
                ar__gemm(0, 1, m, nk, a.dh, scale, Qb, a.dh, K, a.dh, 0, P, nk);
                ar__gemm(0, 1, m, nk, a.dh, 1, dOb, a.dh, V, a.dh, 0, dP, nk);
                for (r = 0; r < m; r++) {
                    float *pr = P + (size_t)r * nk, *dr = dP + (size_t)r * nk, l = lse[i0 + r], dd = D[i0 + r];
                    int n = i0 + r + 1;
                    for (j = 0; j < n; j++) {
                        pr[j] = ar__expf(pr[j] - l);
                        dr[j] = pr[j] * (dr[j] - dd);
                    }
                    for (j = n; j < nk; j++) pr[j] = dr[j] = 0;
                }
                ar__gemm(1, 0, nk, a.dh, m, 1, P, nk, dOb, a.dh, 1, dV, a.dh);                    /* P^T dO */
                ar__gemm(0, 0, m, a.dh, nk, scale, dP, nk, K, a.dh, 1, dQ + (size_t)i0 * a.dh, a.dh); /* dS K */
                ar__gemm(1, 0, nk, a.dh, m, scale, dP, nk, Qb, a.dh, 1, dK, a.dh);                /* dS^T Q */
            }
            ar__att_put(&a, dQ, dx, 3 * a.d, a.rotary, 1);
            ar__att_put(&a, dK, dx + a.d, 3 * a.d, a.rotary, 1);
            ar__att_put(&a, dV, dx + 2 * a.d, 3 * a.d, 0, 1);
        }
}

/* ---- masked fill -------------------------------------------------------- */

ARDEF ar_tensor *ar_masked_fill(ar_graph *g, ar_tensor *x, const float *mask, size_t n_mask, float value)
{
    size_t i, inner = 1;
    int k, ok = 0;
    ar_tensor *t;
    if (!ar__check(g, "ar_masked_fill", x, NULL, 1)) return NULL;
    for (k = x->nd - 1; k >= 0 && !ok; k--) ok = (inner *= (size_t)x->shape[k]) == n_mask;
    if (!mask || !ok || n_mask > 0x7fffffff) {
        ar__fail(g, AR_ERR_SHAPE, "ar_masked_fill: mask of %zu elements does not match trailing dims of x", n_mask);
        return NULL;
    }
    t = ar__node(g, AR_OP_MASKED_FILL, x->nd, x->shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->aux = mask;
    t->ip[0] = (int)n_mask;
    for (i = 0; i < t->n; i++) t->x[i] = mask[i % n_mask] != 0 ? x->x[i] : value;
    return t;
}

static void ar__masked_fill_bwd(ar_tensor *t)
{
    const float *mask = (const float *)t->aux;
    size_t i, j, n_mask = (size_t)t->ip[0];
    for (i = 0; i < t->n; i += n_mask)
        for (j = 0; j < n_mask; j++)
            if (mask[j] != 0) t->src[0]->g[i + j] += t->g[i + j];
}

/* ---- losses: one value per row ------------------------------------------ */

ARDEF ar_tensor *ar_bce_logits(ar_graph *g, ar_tensor *logits, const float *targets)
{
    int shape[AR_MAX_DIM], nd, D;
    size_t r, j;
    ar_tensor *t;
    float *terms;
    if (!ar__check(g, "ar_bce_logits", logits, NULL, 1)) return NULL;
    if (!targets) { ar__fail(g, AR_ERR_ARG, "ar_bce_logits: targets is NULL"); return NULL; }
    for (j = 0; j < logits->n; j++)
        if (!(targets[j] >= 0.0f && targets[j] <= 1.0f)) {
            ar__fail(g, isfinite(targets[j]) ? AR_ERR_RANGE : AR_ERR_NUMERIC, "ar_bce_logits: targets[%zu] = %g is not in [0,1]",
                     j, (double)targets[j]);
            return NULL;
        }
    nd = ar__drop_last(logits, shape);
    t = ar__node(g, AR_OP_BCE_LOGITS, nd, shape, logits, NULL, NULL, NULL);
    if (!t) return NULL;
    t->aux = targets;
    D = AR__LAST(logits);
    /* sigmoid(z) for the backward (when there is one), and a row of terms */
    t->save = (float *)ar_graph_alloc(g, ((t->flags & AR_F_GRAD) ? logits->n : (size_t)D) * sizeof(float));
    terms = (float *)ar_graph_alloc(g, (size_t)D * sizeof(float));
    if (!t->save || !terms) { ar__fail(g, AR_ERR_NOMEM, "ar_bce_logits: out of memory"); return NULL; }
    for (r = 0; r < AR__ROWS(logits); r++) {
        const float *z = logits->x + r * D, *y = targets + r * D;
        float *sg = (t->flags & AR_F_GRAD) ? t->save + r * D : t->save;
        double s = 0;
        /* -log p(y|z) = softplus(z) - y z, sharing e = exp(-|z|) with sigmoid;
           a branch-free loop the compiler vectorizes, then a double sum */
        for (j = 0; j < (size_t)D; j++) {
            float e = ar__expf(-fabsf(z[j]));
            terms[j] = (z[j] > 0 ? z[j] : 0) + ar__log1p_unit(e) - y[j] * z[j];
            sg[j] = z[j] >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
        }
        for (j = 0; j < (size_t)D; j++) s += terms[j];
        t->x[r] = (float)s;
    }
    return t;
}

static void ar__bce_logits_bwd(ar_tensor *t)
{
    ar_tensor *z = t->src[0];
    const float *y = (const float *)t->aux;
    int D = AR__LAST(z);
    size_t r, j;
    for (r = 0; r < AR__ROWS(z); r++)
        for (j = 0; j < (size_t)D; j++) {
            size_t k = r * D + j;
            z->g[k] += t->g[r] * (t->save[k] - y[k]);
        }
}

ARDEF ar_tensor *ar_cross_entropy(ar_graph *g, ar_tensor *logits, const int *labels)
{
    int shape[AR_MAX_DIM], nd, C;
    size_t r, rows;
    ar_tensor *t;
    if (!ar__check(g, "ar_cross_entropy", logits, NULL, 1)) return NULL;
    if (!labels) { ar__fail(g, AR_ERR_ARG, "ar_cross_entropy: labels is NULL"); return NULL; }
    C = AR__LAST(logits);
    rows = AR__ROWS(logits);
    for (r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= C) {
            ar__fail(g, AR_ERR_RANGE, "ar_cross_entropy: labels[%zu] = %d is outside [0,%d)", r, labels[r], C);
            return NULL;
        }
    nd = ar__drop_last(logits, shape);
    t = ar__node(g, AR_OP_CROSS_ENTROPY, nd, shape, logits, NULL, NULL, NULL);
    if (!t) return NULL;
    t->aux = labels;
    t->save = (float *)ar_graph_alloc(g, rows * sizeof(float)); /* logsumexp per row */
    if (!t->save) { ar__fail(g, AR_ERR_NOMEM, "ar_cross_entropy: out of memory"); return NULL; }
    for (r = 0; r < rows; r++) {
        const float *z = logits->x + r * C;
        t->save[r] = ar__softmax_into(z, (size_t)C, NULL);
        t->x[r] = t->save[r] - z[labels[r]];
    }
    return t;
}

static void ar__cross_entropy_bwd(ar_tensor *t)
{
    ar_tensor *z = t->src[0];
    const int *labels = (const int *)t->aux;
    int C = AR__LAST(z);
    size_t r, j;
    for (r = 0; r < AR__ROWS(z); r++) {
        float *dz = z->g + r * C;
        const float *zr = z->x + r * C;
        for (j = 0; j < (size_t)C; j++) dz[j] += t->g[r] * ar__expf(zr[j] - t->save[r]);
        dz[labels[r]] -= t->g[r];
    }
}

/* ---- op table and backward pass ------------------------------------------ */

static void ar__leaf_bwd(ar_tensor *t) { (void)t; }
static void ar__nade_bwd(ar_tensor *t); /* with the NADE model */

typedef struct { const char *name; void (*bwd)(ar_tensor *t); } ar__opdef;
static const ar__opdef ar__ops[AR_OP_COUNT] = {
#define AR__OPDEF(E, n) {#n, ar__##n##_bwd},
    AR__OPS(AR__OPDEF)
#undef AR__OPDEF
};

ARDEF const char *ar_op_name(ar_op op)
{
    return (int)op >= 0 && op < AR_OP_COUNT ? ar__ops[op].name : "?";
}

ARDEF ar_status ar_backward(ar_graph *g, ar_tensor *loss)
{
    int i;
    if (!g) return AR_ERR_ARG;
    if (g->status != AR_OK) return g->status;
    if (!loss) return (ar_status)(ar__fail(g, AR_ERR_ARG, "ar_backward: loss is NULL"), g->status);
    if (loss->n != 1)
        return (ar_status)(ar__fail(g, AR_ERR_SHAPE, "ar_backward: loss has %zu elements, need 1", loss->n), g->status);
    if (!(loss->flags & AR_F_GRAD) || (loss->flags & AR_F_PARAM))
        return (ar_status)(ar__fail(g, AR_ERR_ARG, "ar_backward: loss does not depend on any parameter "
                                                    "(or the graph was built with gradients off)"),
                           g->status);
    /* Every recorded node gets a zeroed gradient up front, so backward
       functions never allocate and never see a missing buffer. */
    for (i = 0; i < g->ntape; i++) { /* zeroed again on a second call: no stale sums */
        ar_tensor *t = g->tape[i];
        if (!t->g) t->g = (float *)ar_graph_alloc(g, t->n * sizeof(float));
        if (!t->g) return (ar_status)(ar__fail(g, AR_ERR_NOMEM, "ar_backward: out of memory"), g->status);
        memset(t->g, 0, t->n * sizeof(float));
    }
    loss->g[0] += 1.0f;
    for (i = g->ntape - 1; i >= 0; i--) ar__ops[g->tape[i]->op].bwd(g->tape[i]);
    return AR_OK;
}

/* ==== SECTION: parameters ================================================ */

ARDEF void ar_params_init(ar_params *ps)
{
    if (ps) memset(ps, 0, sizeof *ps);
}

ARDEF ar_tensor *ar_params_add(ar_params *ps, const char *name, int nd, const int *shape)
{
    ar_tensor *t;
    int i;
    if (!ps) return NULL;
    ps->err[0] = 0;
    if (ps->x) { ar__seterr(ps->err, "ar_params_add: '%s' added after ar_params_alloc", name ? name : "?"); return NULL; }
    if (!name || !*name || strlen(name) >= sizeof t->name) {
        ar__seterr(ps->err, "ar_params_add: name must have 1 to %d characters", (int)sizeof t->name - 1);
        return NULL;
    }
    if (!ar__numel(nd, shape)) {
        ar__seterr(ps->err, "ar_params_add: '%s' has an invalid shape (rank 1..%d, dims > 0, no overflow)", name,
                   AR_MAX_DIM);
        return NULL;
    }
    if (ar_params_find(ps, name)) { ar__seterr(ps->err, "ar_params_add: '%s' already exists", name); return NULL; }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        ar_tensor **tt = (ar_tensor **)ar__realloc(ps->t, (size_t)cap * sizeof *tt);
        if (!tt) { ar__seterr(ps->err, "ar_params_add: out of memory"); return NULL; }
        ps->t = tt;
        ps->cap = cap;
    }
    t = (ar_tensor *)ar__malloc(sizeof *t);
    if (!t) { ar__seterr(ps->err, "ar_params_add: out of memory"); return NULL; }
    memset(t, 0, sizeof *t);
    t->nd = nd;
    for (i = 0; i < nd; i++) t->shape[i] = shape[i];
    t->n = ar__numel(nd, shape);
    t->op = AR_OP_LEAF;
    t->flags = AR_F_PARAM | AR_F_GRAD;
    strcpy(t->name, name);
    ps->t[ps->n++] = t;
    return t;
}

ARDEF ar_status ar_params_alloc(ar_params *ps)
{
    size_t total = 0, off = 0, bytes;
    int i;
    if (!ps) return AR_ERR_ARG;
    ps->err[0] = 0;
    if (ps->x) { ar__seterr(ps->err, "ar_params_alloc: already allocated"); return AR_ERR_ARG; }
    if (!ps->n) { ar__seterr(ps->err, "ar_params_alloc: no parameters declared"); return AR_ERR_ARG; }
    for (i = 0; i < ps->n; i++) {
        if (total + ps->t[i]->n < total) { ar__seterr(ps->err, "ar_params_alloc: size overflow"); return AR_ERR_RANGE; }
        total += ps->t[i]->n;
    }
    if (!ar__mulsz(total, sizeof(float), &bytes)) { ar__seterr(ps->err, "ar_params_alloc: size overflow"); return AR_ERR_RANGE; }
    ps->x = (float *)ar__malloc(bytes);
    ps->g = (float *)ar__malloc(bytes);
    if (!ps->x || !ps->g) {
        AR_FREE(ps->x); AR_FREE(ps->g);
        ps->x = ps->g = NULL;
        ar__seterr(ps->err, "ar_params_alloc: cannot allocate %zu parameters", total);
        return AR_ERR_NOMEM;
    }
    memset(ps->x, 0, bytes);
    memset(ps->g, 0, bytes);
    ps->total = total;
    for (i = 0; i < ps->n; i++) {
        ps->t[i]->x = ps->x + off;
        ps->t[i]->g = ps->g + off;
        off += ps->t[i]->n;
    }
    return AR_OK;
}

ARDEF void ar_params_free(ar_params *ps)
{
    int i;
    if (!ps) return;
    for (i = 0; i < ps->n; i++) AR_FREE(ps->t[i]);
    AR_FREE(ps->t);
    AR_FREE(ps->x); AR_FREE(ps->g); AR_FREE(ps->m); AR_FREE(ps->v);
    memset(ps, 0, sizeof *ps);
}

ARDEF ar_tensor *ar_params_find(const ar_params *ps, const char *name)
{
    int i;
    for (i = 0; ps && name && i < ps->n; i++)
        if (!strcmp(ps->t[i]->name, name)) return ps->t[i];
    return NULL;
}

ARDEF void ar_params_zero_grad(ar_params *ps)
{
    if (ps && ps->g) memset(ps->g, 0, ps->total * sizeof(float));
}

/* 1 when every x[i] is finite: x * 0 is 0 for finite x and NaN for Inf or
   NaN, summed in eight lanes so the loop vectorizes (a per-element test
   with an early exit does not, and this runs over every weight each step). */
static int ar__finite(const float *x, size_t n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;
    size_t i;
    int k;
    for (i = 0; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) acc[k] += x[i + k] * 0.0f;
    for (; i < n; i++) s += x[i] * 0.0f;
    for (k = 0; k < 8; k++) s += acc[k];
    return s == 0;
}

ARDEF ar_status ar_params_check_finite(ar_params *ps)
{
    int k;
    size_t i;
    if (!ps) return AR_ERR_ARG;
    ps->err[0] = 0;
    if (!ps->x) { ar__seterr(ps->err, "ar_params_check_finite: parameters are not allocated"); return AR_ERR_ARG; }
    for (k = 0; k < ps->n; k++) {
        const ar_tensor *t = ps->t[k];
        if (ar__finite(t->x, t->n) && ar__finite(t->g, t->n)) continue;
        for (i = 0; i < t->n; i++) /* find the element to name it */
            if (!isfinite(t->x[i]) || !isfinite(t->g[i])) {
                ar__seterr(ps->err, "parameter '%s' has a non-finite %s at element %zu (%g)", t->name,
                           isfinite(t->x[i]) ? "gradient" : "value", i, (double)(isfinite(t->x[i]) ? t->g[i] : t->x[i]));
                return AR_ERR_NUMERIC;
            }
    }
    return AR_OK;
}

ARDEF double ar_params_grad_norm(const ar_params *ps)
{
    double s = 0;
    size_t i;
    for (i = 0; ps && ps->g && i < ps->total; i++) s += (double)ps->g[i] * ps->g[i];
    return sqrt(s);
}

ARDEF double ar_params_clip_grad_norm(ar_params *ps, double max_norm)
{
    double norm = ar_params_grad_norm(ps);
    size_t i;
    if (max_norm > 0 && norm > max_norm) { /* max_norm <= 0 or NaN: no clipping */
        float s = (float)(max_norm / norm);
        for (i = 0; i < ps->total; i++) ps->g[i] *= s;
    }
    return norm;
}

ARDEF void ar_fill(ar_tensor *t, float v)
{
    size_t i;
    for (i = 0; t && i < t->n; i++) t->x[i] = v;
}

ARDEF void ar_init_uniform(ar_tensor *t, ar_rng *r, float lo, float hi)
{
    size_t i;
    for (i = 0; t && i < t->n; i++) t->x[i] = lo + (hi - lo) * ar_rng_uniform(r);
}

ARDEF void ar_init_normal(ar_tensor *t, ar_rng *r, float mean, float std)
{
    size_t i;
    for (i = 0; t && i < t->n; i++) t->x[i] = mean + std * ar_rng_normal(r);
}

ARDEF void ar_init_xavier(ar_tensor *t, ar_rng *r)
{
    float fan_in, fan_out, a;
    if (!t) return;
    fan_in = (float)t->shape[t->nd - 1];
    fan_out = (float)(t->n / (size_t)t->shape[t->nd - 1]);
    a = sqrtf(6.0f / (fan_in + fan_out));
    ar_init_uniform(t, r, -a, a);
}

/* ==== SECTION: optimizers ================================================ */

ARDEF ar_optim ar_optim_sgd(float lr, float momentum)
{
    ar_optim o;
    memset(&o, 0, sizeof o);
    o.kind = AR_OPTIM_SGD;
    o.lr = lr;
    o.momentum = momentum;
    return o;
}

ARDEF ar_optim ar_optim_adam(float lr)
{
    ar_optim o = ar_optim_sgd(lr, 0);
    o.kind = AR_OPTIM_ADAM;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    return o;
}

ARDEF ar_optim ar_optim_adamw(float lr, float weight_decay)
{
    ar_optim o = ar_optim_adam(lr);
    o.kind = AR_OPTIM_ADAMW;
    o.weight_decay = weight_decay;
    return o;
}

ARDEF ar_optim ar_optim_adagrad(float lr)
{
    ar_optim o = ar_optim_sgd(lr, 0);
    o.kind = AR_OPTIM_ADAGRAD;
    o.eps = 1e-10f; /* PyTorch's default */
    return o;
}

static ar_status ar__moment(ar_params *ps, float **m)
{
    if (*m) return AR_OK;
    *m = (float *)ar__malloc(ps->total * sizeof(float));
    if (!*m) { ar__seterr(ps->err, "ar_optim_step: cannot allocate optimizer state"); return AR_ERR_NOMEM; }
    memset(*m, 0, ps->total * sizeof(float));
    return AR_OK;
}

ARDEF ar_status ar_optim_step(ar_optim *o, ar_params *ps)
{
    float *x, *g, *m, *v, lr, wd;
    size_t i, n;
    if (!ps) return AR_ERR_ARG;
    ps->err[0] = 0;
    if (!o || !ps->x) { ar__seterr(ps->err, "ar_optim_step: need an optimizer and allocated parameters"); return AR_ERR_ARG; }
    if (!(o->lr >= 0) || !(o->weight_decay >= 0)) {
        ar__seterr(ps->err, "ar_optim_step: lr and weight_decay must be >= 0");
        return AR_ERR_ARG;
    }
    if ((int)o->kind < 0 || o->kind > AR_OPTIM_ADAGRAD) {
        ar__seterr(ps->err, "ar_optim_step: unknown optimizer kind %d", (int)o->kind);
        return AR_ERR_ARG;
    }
    if ((o->kind == AR_OPTIM_ADAM || o->kind == AR_OPTIM_ADAMW || o->momentum != 0) && ar__moment(ps, &ps->m))
        return AR_ERR_NOMEM;
    if (o->kind != AR_OPTIM_SGD && ar__moment(ps, &ps->v)) return AR_ERR_NOMEM;
    o->step++;
    x = ps->x; g = ps->g; m = ps->m; v = ps->v; n = ps->total;
    lr = o->lr; wd = o->weight_decay;
    if (o->kind == AR_OPTIM_SGD) {
        float mu = o->momentum;
        for (i = 0; i < n; i++) {
            float d = g[i] + wd * x[i];
            if (m) d = m[i] = mu * m[i] + d;
            x[i] -= lr * d;
        }
    } else if (o->kind == AR_OPTIM_ADAGRAD) { /* v: the running sum of squared gradients */
        for (i = 0; i < n; i++) {
            float d = g[i] + wd * x[i];
            v[i] += d * d;
            x[i] -= lr * d / (sqrtf(v[i]) + o->eps);
        }
    } else {
        float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
        float step = (float)(lr / (1.0 - pow(b1, (double)o->step)));
        float rbc2 = (float)(1.0 / sqrt(1.0 - pow(b2, (double)o->step)));
        float l2 = o->kind == AR_OPTIM_ADAM ? wd : 0, decay = o->kind == AR_OPTIM_ADAMW ? 1 - lr * wd : 1;
        for (i = 0; i < n; i++) {
            float d = g[i] + l2 * x[i];
            m[i] = b1 * m[i] + (1 - b1) * d;
            v[i] = b2 * v[i] + (1 - b2) * d * d;
            x[i] = x[i] * decay - step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
        }
    }
    return AR_OK;
}

ARDEF float ar_lr_cosine(long step, long warmup, long total, float lr, float lr_min)
{
    double p;
    if (step < 0) step = 0;
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return lr_min;
    p = (double)(step - warmup) / (double)(total - warmup);
    if (p > 1) p = 1;
    return lr_min + (lr - lr_min) * (float)(0.5 * (1.0 + cos(AR__PI * p)));
}

/* ==== SECTION: I/O ======================================================= */

static int ar__little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Whole file into a new buffer; message into err on failure. */
static ar_status ar__read_file(const char *path, unsigned char **buf, size_t *len, char *err)
{
    FILE *f;
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *b;
    *buf = NULL;
    *len = 0;
    if (!path) { ar__seterr(err, "path is NULL"); return AR_ERR_ARG; }
    f = fopen(path, "rb");
    if (!f) { ar__seterr(err, "cannot open '%s' for reading", path); return AR_ERR_IO; }
    b = (unsigned char *)ar__malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = cap * 2 > cap ? (unsigned char *)ar__realloc(b, cap * 2) : NULL;
            if (!nb) { AR_FREE(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    if (!b) { fclose(f); ar__seterr(err, "out of memory reading '%s'", path); return AR_ERR_NOMEM; }
    if (ferror(f)) { fclose(f); AR_FREE(b); ar__seterr(err, "read error on '%s'", path); return AR_ERR_IO; }
    fclose(f);
    *buf = b;
    *len = n;
    return AR_OK;
}

/* Write to "<path>.tmp", read it back and compare, then rename over path:
   readers never see half a file, and a bad write never replaces a good one. */
static ar_status ar__write_file_atomic(const char *path, const unsigned char *buf, size_t len, char *err)
{
    char *tmp;
    size_t pl;
    FILE *f;
    int bad;
    if (!path) { ar__seterr(err, "path is NULL"); return AR_ERR_ARG; }
    pl = strlen(path);
    tmp = (char *)ar__malloc(pl + 5);
    if (!tmp) { ar__seterr(err, "out of memory"); return AR_ERR_NOMEM; }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    f = fopen(tmp, "wb");
    if (!f) { ar__seterr(err, "cannot open '%s' for writing", tmp); AR_FREE(tmp); return AR_ERR_IO; }
    bad = fwrite(buf, 1, len, f) != len;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (!bad) { /* read it back before it replaces anything */
        unsigned char *back;
        size_t blen;
        char rerr[AR_ERR_LEN];
        bad = ar__read_file(tmp, &back, &blen, rerr) != AR_OK;
        if (!bad) {
            bad = blen != len || memcmp(back, buf, len) != 0;
            AR_FREE(back);
        }
    }
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        ar__seterr(err, "cannot write '%s' (disk full or no permission?)", path);
        AR_FREE(tmp);
        return AR_ERR_IO;
    }
    AR_FREE(tmp);
    return AR_OK;
}

/* ---- metadata ------------------------------------------------------------ */

ARDEF void ar_meta_init(ar_meta *m)
{
    if (m) memset(m, 0, sizeof *m);
}

ARDEF void ar_meta_free(ar_meta *m)
{
    int i;
    if (!m) return;
    for (i = 0; i < m->n; i++) { AR_FREE(m->key[i]); AR_FREE(m->val[i]); }
    AR_FREE(m->key);
    AR_FREE(m->val);
    memset(m, 0, sizeof *m);
}

static char *ar__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = (char *)ar__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ARDEF ar_status ar_meta_set(ar_meta *m, const char *key, const char *val)
{
    char *v;
    int i;
    if (!m || !key || !val || !*key) return AR_ERR_ARG;
    for (i = 0; i < m->n && strcmp(m->key[i], key); i++) {}
    if (i == AR_META_MAX) return AR_ERR_RANGE;
    if (i == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        char **k = (char **)ar__realloc(m->key, (size_t)cap * sizeof *k), **vv;
        if (!k) return AR_ERR_NOMEM;
        m->key = k;
        vv = (char **)ar__realloc(m->val, (size_t)cap * sizeof *vv);
        if (!vv) return AR_ERR_NOMEM;
        m->val = vv;
        m->cap = cap;
    }
    if (!(v = ar__strdup(val))) return AR_ERR_NOMEM;
    if (i < m->n) {
        AR_FREE(m->val[i]);
    } else if (!(m->key[i] = ar__strdup(key))) {
        AR_FREE(v);
        return AR_ERR_NOMEM;
    } else {
        m->n++;
    }
    m->val[i] = v;
    return AR_OK;
}

ARDEF const char *ar_meta_get(const ar_meta *m, const char *key)
{
    int i;
    for (i = 0; m && key && i < m->n; i++)
        if (!strcmp(m->key[i], key)) return m->val[i];
    return NULL;
}

/* ---- safetensors writer -------------------------------------------------- */

typedef struct { char *s; size_t n, cap; int oom; } ar__sb; /* growable string */

static void ar__sb_put(ar__sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *ns = (char *)ar__realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void ar__sb_str(ar__sb *b, const char *s) { ar__sb_put(b, s, strlen(s)); }

static void ar__sb_json(ar__sb *b, const char *s) /* quoted, escaped */
{
    char e[8];
    ar__sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { e[0] = '\\'; e[1] = (char)c; ar__sb_put(b, e, 2); }
        else if (c < 0x20) { snprintf(e, sizeof e, "\\u%04x", c); ar__sb_put(b, e, 6); }
        else ar__sb_put(b, s, 1);
    }
    ar__sb_put(b, "\"", 1);
}

ARDEF ar_status ar_params_save_mem(ar_params *ps, const ar_meta *meta, unsigned char **buf, size_t *len)
{
    ar__sb h = {NULL, 0, 0, 0};
    char num[64];
    size_t off = 0, hlen, total, i;
    unsigned char *out;
    int k, d;
    if (!ps) return AR_ERR_ARG;
    ps->err[0] = 0;
    if (!buf || !len) { ar__seterr(ps->err, "ar_params_save_mem: buf and len must not be NULL"); return AR_ERR_ARG; }
    *buf = NULL;
    *len = 0;
    if (!ps->x) { ar__seterr(ps->err, "ar_params_save: parameters are not allocated"); return AR_ERR_ARG; }
    ar__sb_str(&h, "{");
    if (meta && meta->n) {
        ar__sb_str(&h, "\"__metadata__\":{");
        for (k = 0; k < meta->n; k++) {
            if (k) ar__sb_str(&h, ",");
            ar__sb_json(&h, meta->key[k]);
            ar__sb_str(&h, ":");
            ar__sb_json(&h, meta->val[k]);
        }
        ar__sb_str(&h, "},");
    }
    for (k = 0; k < ps->n; k++) {
        const ar_tensor *t = ps->t[k];
        if (k) ar__sb_str(&h, ",");
        ar__sb_json(&h, t->name);
        ar__sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (d = 0; d < t->nd; d++) {
            snprintf(num, sizeof num, d ? ",%d" : "%d", t->shape[d]);
            ar__sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + t->n * 4);
        ar__sb_str(&h, num);
        off += t->n * 4;
    }
    ar__sb_str(&h, "}");
    while (!h.oom && (h.n % 8) != 0) ar__sb_str(&h, " "); /* keeps the data 8-aligned */
    if (h.oom) { AR_FREE(h.s); ar__seterr(ps->err, "ar_params_save: out of memory"); return AR_ERR_NOMEM; }
    hlen = h.n;
    total = 8 + hlen + ps->total * 4;
    out = (unsigned char *)ar__malloc(total);
    if (!out) { AR_FREE(h.s); ar__seterr(ps->err, "ar_params_save: out of memory"); return AR_ERR_NOMEM; }
    for (k = 0; k < 8; k++) out[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    memcpy(out + 8, h.s, hlen);
    AR_FREE(h.s);
    memcpy(out + 8 + hlen, ps->x, ps->total * 4);
    if (!ar__little_endian())
        for (i = 8 + hlen; i < total; i += 4) {
            unsigned char c0 = out[i], c1 = out[i + 1];
            out[i] = out[i + 3]; out[i + 1] = out[i + 2]; out[i + 2] = c1; out[i + 3] = c0;
        }
    *buf = out;
    *len = total;
    return AR_OK;
}

ARDEF ar_status ar_params_save(ar_params *ps, const char *path, const ar_meta *meta)
{
    unsigned char *buf;
    size_t len;
    ar_status s = ar_params_save_mem(ps, meta, &buf, &len);
    if (s != AR_OK) return s;
    s = ar__write_file_atomic(path, buf, len, ps->err);
    AR_FREE(buf);
    return s;
}

/* ---- safetensors reader: a strict JSON subset parser --------------------- */

typedef struct {
    const char *p, *end;
    char *err;
    char *s1, *s2; /* scratch for strings, each as long as the header */
    size_t cap;
    int nomem;     /* the failure was memory, not the file */
} ar__json;

static int ar__jerr(ar__json *j, const char *what)
{
    if (!j->err[0]) ar__seterr(j->err, "safetensors header: %s", what);
    return 0;
}

static void ar__jws(ar__json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int ar__jchar(ar__json *j, char c)
{
    ar__jws(j);
    if (j->p < j->end && *j->p == c) { j->p++; return 1; }
    return 0;
}

static int ar__jhex(ar__json *j, unsigned *v)
{
    int k;
    *v = 0;
    for (k = 0; k < 4; k++, j->p++) {
        char c = j->p < j->end ? *j->p : 0;
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    return 1;
}

/* A JSON string into out (UTF-8, NUL-terminated, at most cap-1 bytes). */
static int ar__jstring(ar__json *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!ar__jchar(j, '"')) return ar__jerr(j, "expected a string");
    while (j->p < j->end && *j->p != '"') {
        unsigned c = (unsigned char)*j->p++, u;
        char enc[4];
        size_t k, m = 1;
        if (c < 0x20) return ar__jerr(j, "control character in a string");
        enc[0] = (char)c;
        if (c == '\\') {
            if (j->p >= j->end) break;
            c = (unsigned char)*j->p++;
            switch (c) {
            case '"': case '\\': case '/': enc[0] = (char)c; break;
            case 'b': enc[0] = '\b'; break;
            case 'f': enc[0] = '\f'; break;
            case 'n': enc[0] = '\n'; break;
            case 'r': enc[0] = '\r'; break;
            case 't': enc[0] = '\t'; break;
            case 'u':
                if (!ar__jhex(j, &u) || u == 0 || (u >= 0xd800 && u < 0xe000))
                    return ar__jerr(j, "bad or unsupported \\u escape");
                if (u < 0x80) enc[0] = (char)u;
                else if (u < 0x800) { enc[0] = (char)(0xc0 | (u >> 6)); enc[1] = (char)(0x80 | (u & 63)); m = 2; }
                else {
                    enc[0] = (char)(0xe0 | (u >> 12));
                    enc[1] = (char)(0x80 | ((u >> 6) & 63));
                    enc[2] = (char)(0x80 | (u & 63));
                    m = 3;
                }
                break;
            default: return ar__jerr(j, "bad escape in a string");
            }
        }
        if (n + m >= cap) return ar__jerr(j, "string too long");
        for (k = 0; k < m; k++) out[n++] = enc[k];
    }
    if (j->p >= j->end) return ar__jerr(j, "unterminated string");
    j->p++;
    out[n] = 0;
    return 1;
}

static int ar__juint(ar__json *j, uint64_t *v)
{
    const char *s;
    ar__jws(j);
    s = j->p;
    *v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (*v > (UINT64_MAX - d) / 10) return ar__jerr(j, "integer too large");
        *v = *v * 10 + d;
    }
    if (j->p == s || (j->p - s > 1 && *s == '0')) return ar__jerr(j, "expected a non-negative integer");
    return 1;
}

/* [u, u, ...] with at most max entries; *n gets the count. */
static int ar__juints(ar__json *j, uint64_t *v, int max, int *n)
{
    *n = 0;
    if (!ar__jchar(j, '[')) return ar__jerr(j, "expected '['");
    if (ar__jchar(j, ']')) return 1;
    do {
        if (*n == max) return ar__jerr(j, "array too long");
        if (!ar__juint(j, &v[(*n)++])) return 0;
    } while (ar__jchar(j, ','));
    return ar__jchar(j, ']') ? 1 : ar__jerr(j, "expected ']'");
}

typedef struct { uint64_t begin, end; } ar__span;

static int ar__span_cmp(const void *a, const void *b)
{
    uint64_t x = ((const ar__span *)a)->begin, y = ((const ar__span *)b)->begin;
    return x < y ? -1 : x > y;
}

/* Parses one tensor entry {"dtype":..,"shape":..,"data_offsets":..} for t. */
static int ar__st_entry(ar__json *j, const ar_tensor *t, uint64_t dlen, ar__span *span)
{
    char key[32], dtype[16];
    uint64_t shape[AR_MAX_DIM + 1], offs[3];
    int seen = 0, nd = 0, no = 0, d;
    if (!ar__jchar(j, '{')) return ar__jerr(j, "tensor entry is not an object");
    do {
        if (!ar__jstring(j, key, sizeof key) || !ar__jchar(j, ':')) return ar__jerr(j, "bad key in a tensor entry");
        if (!strcmp(key, "dtype") && !(seen & 1)) {
            if (!ar__jstring(j, dtype, sizeof dtype)) return 0;
            if (strcmp(dtype, "F32")) {
                ar__seterr(j->err, "safetensors: tensor '%s' has dtype %s, expected F32", t->name, dtype);
                return 0;
            }
            seen |= 1;
        } else if (!strcmp(key, "shape") && !(seen & 2)) {
            if (!ar__juints(j, shape, AR_MAX_DIM + 1, &nd)) return 0;
            seen |= 2;
        } else if (!strcmp(key, "data_offsets") && !(seen & 4)) {
            if (!ar__juints(j, offs, 3, &no)) return 0;
            seen |= 4;
        } else {
            ar__seterr(j->err, "safetensors: tensor '%s': unknown or repeated key '%s'", t->name, key);
            return 0;
        }
    } while (ar__jchar(j, ','));
    if (!ar__jchar(j, '}')) return ar__jerr(j, "expected '}' after a tensor entry");
    if (seen != 7) {
        ar__seterr(j->err, "safetensors: tensor '%s' lacks dtype, shape or data_offsets", t->name);
        return 0;
    }
    for (d = 0; nd == t->nd && d < nd; d++)
        if (shape[d] != (uint64_t)t->shape[d]) break;
    if (nd != t->nd || d != nd) {
        char want[64];
        ar__shape_str(t, want, sizeof want);
        ar__seterr(j->err, "safetensors: tensor '%s' has another shape than the model's %s", t->name, want);
        return 0;
    }
    if (no != 2 || offs[0] > offs[1] || offs[1] > dlen || offs[1] - offs[0] != (uint64_t)t->n * 4) {
        ar__seterr(j->err, "safetensors: tensor '%s' has data_offsets outside the file or of the wrong size",
                   t->name);
        return 0;
    }
    span->begin = offs[0];
    span->end = offs[1];
    return 1;
}

static int ar__st_meta(ar__json *j, ar_meta *meta)
{
    ar_status s;
    if (!ar__jchar(j, '{')) return ar__jerr(j, "__metadata__ is not an object");
    if (ar__jchar(j, '}')) return 1;
    do {
        if (!ar__jstring(j, j->s1, j->cap) || !ar__jchar(j, ':')) return ar__jerr(j, "expected \"key\": in __metadata__");
        ar__jws(j);
        if (j->p == j->end || *j->p != '"') return ar__jerr(j, "__metadata__ must map strings to strings");
        if (!ar__jstring(j, j->s2, j->cap)) return 0;
        if (ar_meta_get(meta, j->s1)) return ar__jerr(j, "a __metadata__ key appears twice");
        if ((s = ar_meta_set(meta, j->s1, j->s2)) != AR_OK) {
            j->nomem = s == AR_ERR_NOMEM;
            return ar__jerr(j, j->nomem ? "out of memory" : "bad or too many __metadata__ entries");
        }
    } while (ar__jchar(j, ','));
    return ar__jchar(j, '}') ? 1 : ar__jerr(j, "expected '}' after __metadata__");
}

/* Opens a safetensors buffer: the 8-byte header length, checked against
   the file, and j over the JSON header that follows (with scratch the
   caller frees: AR_FREE(j->s1)). The one place that reads the framing. */
static ar_status ar__st_open(const unsigned char *buf, size_t len, ar__json *j, uint64_t *hlen, char *err)
{
    int k;
    *hlen = 0;
    j->s1 = NULL;
    if (!buf || len < 8) { ar__seterr(err, "safetensors: file too short (%zu bytes)", buf ? len : 0); return AR_ERR_FORMAT; }
    for (k = 0; k < 8; k++) *hlen |= (uint64_t)buf[k] << (8 * k);
    if (*hlen < 2 || *hlen > len - 8 || *hlen > ((uint64_t)100 << 20)) {
        ar__seterr(err, "safetensors: header length %llu does not fit a file of %zu bytes", (unsigned long long)*hlen, len);
        return AR_ERR_FORMAT;
    }
    j->cap = (size_t)*hlen + 1;
    if (!(j->s1 = (char *)ar__malloc(2 * j->cap))) { ar__seterr(err, "safetensors: out of memory"); return AR_ERR_NOMEM; }
    j->s2 = j->s1 + j->cap;
    j->p = (const char *)buf + 8;
    j->end = j->p + *hlen;
    j->err = err;
    j->nomem = 0;
    err[0] = 0;
    if (*j->p != '{' || !ar__jchar(j, '{')) {
        ar__jerr(j, "does not start with '{'");
        AR_FREE(j->s1);
        j->s1 = NULL;
        return AR_ERR_FORMAT;
    }
    return AR_OK;
}

ARDEF ar_status ar_params_load_mem(ar_params *ps, const unsigned char *buf, size_t len, ar_meta *meta_out)
{
    uint64_t hlen = 0, dlen, covered = 0;
    ar__span *spans;
    ar_meta meta;
    ar__json j;
    int k, nseen = 0, has_meta = 0;
    size_t i;
    if (!ps) return AR_ERR_ARG;
    ar_status s;
    if (!ps->x) { ar__seterr(ps->err, "ar_params_load: parameters are not allocated"); return AR_ERR_ARG; }
    if ((s = ar__st_open(buf, len, &j, &hlen, ps->err)) != AR_OK) return s;
    dlen = len - 8 - hlen;
    spans = (ar__span *)ar__malloc(2 * (size_t)ps->n * sizeof *spans); /* per parameter, then sorted */
    if (!spans) {
        AR_FREE(j.s1);
        ar__seterr(ps->err, "ar_params_load: out of memory");
        return AR_ERR_NOMEM;
    }
    memset(spans, 0, 2 * (size_t)ps->n * sizeof *spans);
    ar_meta_init(&meta);
    if (!ar__jchar(&j, '}')) do {
        ar_tensor *t;
        if (!ar__jstring(&j, j.s1, j.cap) || !ar__jchar(&j, ':')) { ar__jerr(&j, "expected \"name\":"); goto fail; }
        if (!strcmp(j.s1, "__metadata__") && !has_meta) {
            if (!ar__st_meta(&j, &meta)) goto fail;
            has_meta = 1;
            continue;
        }
        t = ar_params_find(ps, j.s1);
        for (k = 0; t && ps->t[k] != t; k++) {}
        if (!t || spans[k].end) {
            ar__seterr(ps->err, "safetensors: tensor '%.100s' is %s", j.s1,
                       t ? "listed twice" : "not a parameter of this model");
            goto fail;
        }
        if (!ar__st_entry(&j, t, dlen, &spans[k])) goto fail; /* end > 0 marks it seen */
        nseen++;
    } while (ar__jchar(&j, ','));
    if (!ar__jchar(&j, '}')) { ar__jerr(&j, "expected '}' or ',' after an entry"); goto fail; }
    ar__jws(&j); /* trailing padding */
    if (j.p != j.end) { ar__jerr(&j, "trailing bytes after the JSON object"); goto fail; }
    if (nseen != ps->n) {
        for (k = 0; spans[k].end; k++) {}
        ar__seterr(ps->err, "safetensors: parameter '%s' is missing from the file", ps->t[k]->name);
        goto fail;
    }
    /* Offsets must tile the data exactly: sorted, contiguous, no overlap. */
    memcpy(spans + ps->n, spans, (size_t)ps->n * sizeof *spans);
    qsort(spans + ps->n, (size_t)ps->n, sizeof *spans, ar__span_cmp);
    for (k = 0; k < ps->n; k++) {
        if (spans[ps->n + k].begin != covered) {
            ar__seterr(ps->err, "safetensors: tensor data overlap or leave holes");
            goto fail;
        }
        covered = spans[ps->n + k].end;
    }
    if (covered != dlen) {
        ar__seterr(ps->err, "safetensors: %llu data bytes, the tensors cover %llu", (unsigned long long)dlen,
                   (unsigned long long)covered);
        goto fail;
    }
    /* Everything checked: only now touch the caller's state. */
    for (k = 0; k < ps->n; k++) {
        const unsigned char *src = buf + 8 + hlen + spans[k].begin;
        float *dst = ps->t[k]->x;
        memcpy(dst, src, ps->t[k]->n * 4);
        if (!ar__little_endian())
            for (i = 0; i < ps->t[k]->n; i++) {
                unsigned char *c = (unsigned char *)(dst + i), c0 = c[0], c1 = c[1];
                c[0] = c[3]; c[1] = c[2]; c[2] = c1; c[3] = c0;
            }
    }
    if (meta_out) {
        ar_meta_free(meta_out);
        *meta_out = meta;
    } else {
        ar_meta_free(&meta);
    }
    AR_FREE(spans);
    AR_FREE(j.s1);
    return AR_OK;
fail:
    ar_meta_free(&meta);
    AR_FREE(spans);
    AR_FREE(j.s1);
    return j.nomem ? AR_ERR_NOMEM : AR_ERR_FORMAT;
}

ARDEF ar_status ar_params_load(ar_params *ps, const char *path, ar_meta *meta_out)
{
    unsigned char *buf;
    size_t len;
    ar_status s;
    if (!ps) return AR_ERR_ARG;
    if (!ps->x) { ar__seterr(ps->err, "ar_params_load: parameters are not allocated"); return AR_ERR_ARG; }
    s = ar__read_file(path, &buf, &len, ps->err);
    if (s != AR_OK) return s;
    s = ar_params_load_mem(ps, buf, len, meta_out);
    AR_FREE(buf);
    return s;
}

/* ---- IDX (MNIST) ---------------------------------------------------------- */

ARDEF ar_status ar_idx_load_mem(ar_idx *out, const unsigned char *buf, size_t len)
{
    size_t n = 1, hdr;
    int d;
    if (!out) return AR_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (!buf) { ar__seterr(out->err, "ar_idx_load_mem: buf is NULL"); return AR_ERR_ARG; }
    if (len < 4 || buf[0] != 0 || buf[1] != 0) {
        ar__seterr(out->err, "IDX: bad magic (not an IDX file)");
        return AR_ERR_FORMAT;
    }
    if (buf[2] != 0x08) {
        ar__seterr(out->err, "IDX: element type 0x%02x, only unsigned bytes (0x08) are supported", buf[2]);
        return AR_ERR_FORMAT;
    }
    if (buf[3] < 1 || buf[3] > AR_MAX_DIM) {
        ar__seterr(out->err, "IDX: %d dimensions, need 1 to %d", buf[3], AR_MAX_DIM);
        return AR_ERR_FORMAT;
    }
    out->nd = buf[3];
    hdr = 4 + 4 * (size_t)out->nd;
    if (len < hdr) { ar__seterr(out->err, "IDX: truncated header"); return AR_ERR_FORMAT; }
    for (d = 0; d < out->nd; d++) {
        const unsigned char *p = buf + 4 + 4 * d;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0 || v > 0x7fffffff || !ar__mulsz(n, v, &n)) {
            ar__seterr(out->err, "IDX: dimension %d is %lu (zero, too large or overflowing)", d, (unsigned long)v);
            return AR_ERR_FORMAT;
        }
        out->dims[d] = (int)v;
    }
    if (len - hdr != n) {
        ar__seterr(out->err, "IDX: header promises %zu data bytes, file has %zu", n, len - hdr);
        return AR_ERR_FORMAT;
    }
    out->data = (unsigned char *)ar__malloc(n);
    if (!out->data) { ar__seterr(out->err, "IDX: out of memory for %zu bytes", n); return AR_ERR_NOMEM; }
    memcpy(out->data, buf + hdr, n);
    out->n = n;
    return AR_OK;
}

ARDEF ar_status ar_idx_load(ar_idx *out, const char *path)
{
    unsigned char *buf;
    size_t len;
    ar_status s;
    char err[AR_ERR_LEN];
    if (!out) return AR_ERR_ARG;
    s = ar__read_file(path, &buf, &len, err);
    if (s != AR_OK) {
        memset(out, 0, sizeof *out);
        memcpy(out->err, err, sizeof err);
        return s;
    }
    s = ar_idx_load_mem(out, buf, len);
    AR_FREE(buf);
    if (s != AR_OK) { /* name the file in the message */
        memcpy(err, out->err, sizeof err);
        snprintf(out->err, AR_ERR_LEN, "%.100s: %.150s", path, err);
    }
    return s;
}

ARDEF void ar_idx_free(ar_idx *idx)
{
    if (!idx) return;
    AR_FREE(idx->data);
    memset(idx, 0, sizeof *idx);
}

ARDEF ar_status ar_mnist_load(ar_mnist *m, const char *dir, int binarize, uint64_t seed)
{
    static const char *const names[2] = {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"};
    ar_idx f[2];
    char path[4096];
    size_t D, k, total;
    ar_status s = AR_OK;
    ar_rng rng;
    int i;
    if (!m) return AR_ERR_ARG;
    memset(m, 0, sizeof *m);
    memset(f, 0, sizeof f);
    if (!dir) { ar__seterr(m->err, "ar_mnist_load: dir is NULL"); return AR_ERR_ARG; }
    for (i = 0; i < 2 && s == AR_OK; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path) {
            ar__seterr(m->err, "ar_mnist_load: path too long");
            s = AR_ERR_ARG;
        } else if ((s = ar_idx_load(&f[i], path)) != AR_OK) {
            memcpy(m->err, f[i].err, AR_ERR_LEN);
        } else if (f[i].nd != 3 || (i && (f[1].dims[1] != f[0].dims[1] || f[1].dims[2] != f[0].dims[2])) ||
                   (!i && f[0].dims[0] < 6) || (size_t)f[i].dims[1] * (size_t)f[i].dims[2] > 0x7fffffff) {
            ar__seterr(m->err, "%s: expected [N,rows,cols] images (N >= 6) of the same size as the training set", path);
            s = AR_ERR_FORMAT;
        }
    }
    if (s != AR_OK) { ar_idx_free(&f[0]); ar_idx_free(&f[1]); return s; }
    m->rows = f[0].dims[1];
    m->cols = f[0].dims[2];
    m->D = m->rows * m->cols;
    D = (size_t)m->D;
    m->n_valid = f[0].dims[0] / 6; /* 10000 of MNIST's 60000 */
    m->n_train = f[0].dims[0] - m->n_valid;
    m->n_test = f[1].dims[0];
    total = f[0].n + f[1].n;
    m->train = (float *)ar__malloc(total * sizeof(float));
    if (!m->train) {
        ar__seterr(m->err, "ar_mnist_load: out of memory");
        ar_idx_free(&f[0]); ar_idx_free(&f[1]);
        return AR_ERR_NOMEM;
    }
    m->valid = m->train + (size_t)m->n_train * D;
    m->test = m->train + f[0].n;
    ar_rng_seed(&rng, seed);
    for (i = 0; i < 2; i++) {
        float *dst = i ? m->test : m->train;
        for (k = 0; k < f[i].n; k++)
            dst[k] = binarize ? (float)ar_rng_bernoulli(&rng, (float)f[i].data[k] / 255.0f)
                              : (float)f[i].data[k] / 255.0f;
        ar_idx_free(&f[i]);
    }
    return AR_OK;
}

ARDEF void ar_mnist_free(ar_mnist *m)
{
    if (!m) return;
    AR_FREE(m->train);
    memset(m, 0, sizeof *m);
}

/* Skips one JSON value of any kind (used to read just the metadata). */
static int ar__jskip(ar__json *j, int depth)
{
    const char *s;
    ar__jws(j);
    if (depth > 32 || j->p >= j->end) return ar__jerr(j, "malformed or too deeply nested value");
    if (*j->p == '"') return ar__jstring(j, j->s2, j->cap);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        if (ar__jchar(j, close)) return 1;
        do {
            if (close == '}' && (!ar__jstring(j, j->s2, j->cap) || !ar__jchar(j, ':'))) return ar__jerr(j, "bad key");
            if (!ar__jskip(j, depth + 1)) return 0;
        } while (ar__jchar(j, ','));
        return ar__jchar(j, close) ? 1 : ar__jerr(j, "unbalanced brackets");
    }
    for (s = j->p; j->p < j->end && (isalnum((unsigned char)*j->p) || strchr("+-.", *j->p)); j->p++) {}
    return j->p > s ? 1 : ar__jerr(j, "malformed value");
}

/* The __metadata__ of a safetensors buffer, without touching any tensor. */
static ar_status ar__st_read_meta(const unsigned char *buf, size_t len, ar_meta *out, char *err)
{
    uint64_t hlen;
    ar__json j;
    int ok = 1;
    ar_meta meta;
    ar_status s;
    if ((s = ar__st_open(buf, len, &j, &hlen, err)) != AR_OK) return s;
    ar_meta_init(&meta);
    if (!ar__jchar(&j, '}')) do {
        if (!ar__jstring(&j, j.s1, j.cap) || !ar__jchar(&j, ':')) { ok = ar__jerr(&j, "expected \"name\":"); break; }
        ok = !strcmp(j.s1, "__metadata__") ? ar__st_meta(&j, &meta) : ar__jskip(&j, 0);
    } while (ok && ar__jchar(&j, ','));
    if (ok && !ar__jchar(&j, '}')) ok = ar__jerr(&j, "expected '}' or ',' after an entry");
    if (ok) ar__jws(&j);
    if (ok && j.p != j.end) ok = ar__jerr(&j, "trailing bytes after the JSON object");
    AR_FREE(j.s1);
    if (!ok) { ar_meta_free(&meta); return j.nomem ? AR_ERR_NOMEM : AR_ERR_FORMAT; }
    ar_meta_free(out);
    *out = meta;
    return AR_OK;
}

/* ==== SECTION: I/O — optimizer state ====================================== */

/* Prefixes a message with the file it is about. */
static void ar__err_path(char *err, const char *path)
{
    char msg[AR_ERR_LEN];
    memcpy(msg, err, AR_ERR_LEN);
    snprintf(err, AR_ERR_LEN, "%.100s: %.150s", path, msg);
}

static int ar__meta_u64(const ar_meta *meta, const char *key, uint64_t *v)
{
    const char *s = ar_meta_get(meta, key);
    *v = 0;
    if (!s || !*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || *v > (UINT64_MAX - 9) / 10) return 0;
        *v = *v * 10 + (uint64_t)(*s - '0');
    }
    return 1;
}

/* A fingerprint of the parameters' names and shapes (FNV-1a), so an
   optimizer state is only loaded into the parameter set it was saved for. */
static void ar__layout_hex(const ar_params *ps, char *out)
{
    uint64_t h = 0xcbf29ce484222325u;
    int k, d;
    const char *c;
    for (k = 0; k < ps->n; k++) {
        for (c = ps->t[k]->name; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3u;
        for (d = 0; d < ps->t[k]->nd; d++) h = (h ^ (uint64_t)(unsigned)ps->t[k]->shape[d]) * 0x100000001b3u;
        h = (h ^ 0xffu) * 0x100000001b3u;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static const char *const ar__optim_names[4] = {"sgd", "adam", "adamw", "adagrad"};

/* A parameter set of flat "m"/"v" tensors shaped for ps (has: bit 0 m, bit 1 v). */
static ar_status ar__optim_tensors(ar_params *st, const ar_params *ps, int has)
{
    int shape[1];
    ar_params_init(st);
    if (ps->total > 0x7fffffff) return AR_ERR_RANGE;
    shape[0] = (int)ps->total;
    if ((has & 1) && !ar_params_add(st, "m", 1, shape)) return AR_ERR_NOMEM;
    if ((has & 2) && !ar_params_add(st, "v", 1, shape)) return AR_ERR_NOMEM;
    return has ? ar_params_alloc(st) : AR_OK;
}

ARDEF ar_status ar_optim_save(const ar_optim *o, ar_params *ps, const ar_rng *rng, const ar_meta *extra,
                              const char *path)
{
    ar_params st;
    ar_meta meta;
    char v[80];
    int i, has;
    ar_status s = AR_OK;
    if (!ps) return AR_ERR_ARG;
    ps->err[0] = 0;
    if (!o || !ps->x || (int)o->kind < 0 || o->kind > AR_OPTIM_ADAGRAD) {
        ar__seterr(ps->err, "ar_optim_save: need a valid optimizer and allocated parameters");
        return AR_ERR_ARG;
    }
    has = (ps->m ? 1 : 0) | (ps->v ? 2 : 0);
    ar_meta_init(&meta);
    for (i = 0; extra && i < extra->n && s == AR_OK; i++) s = ar_meta_set(&meta, extra->key[i], extra->val[i]);
#define AR__PUTF(k, fmt, x) snprintf(v, sizeof v, fmt, x); if (s == AR_OK) s = ar_meta_set(&meta, k, v)
    AR__PUTF("ar.model", "%s", "optim");
    AR__PUTF("optim", "%s", ar__optim_names[o->kind]);
    AR__PUTF("step", "%ld", o->step);
    AR__PUTF("lr", "%.9g", (double)o->lr); /* %.9g: floats round-trip exactly */
    AR__PUTF("momentum", "%.9g", (double)o->momentum);
    AR__PUTF("beta1", "%.9g", (double)o->beta1);
    AR__PUTF("beta2", "%.9g", (double)o->beta2);
    AR__PUTF("eps", "%.9g", (double)o->eps);
    AR__PUTF("weight_decay", "%.9g", (double)o->weight_decay);
    AR__PUTF("moments", "%d", has);
    ar__layout_hex(ps, v);
    if (s == AR_OK) s = ar_meta_set(&meta, "layout", v);
#undef AR__PUTF
    if (rng && s == AR_OK) {
        snprintf(v, sizeof v, "%016llx%016llx%016llx%016llx", (unsigned long long)rng->s[0],
                 (unsigned long long)rng->s[1], (unsigned long long)rng->s[2], (unsigned long long)rng->s[3]);
        s = ar_meta_set(&meta, "rng", v);
    }
    if (s == AR_OK) s = ar__optim_tensors(&st, ps, has);
    if (s == AR_OK && !has) { /* plain SGD has no moments: a one-float placeholder keeps it a normal file */
        int one[1] = {1};
        s = ar_params_add(&st, "none", 1, one) ? ar_params_alloc(&st) : AR_ERR_NOMEM;
    }
    if (s != AR_OK) {
        ar__seterr(ps->err, "ar_optim_save: %s", s == AR_ERR_RANGE ? "too many parameters" : "out of memory");
        ar_params_free(&st);
        ar_meta_free(&meta);
        return s;
    }
    if (has & 1) memcpy(ar_params_find(&st, "m")->x, ps->m, ps->total * sizeof(float));
    if (has & 2) memcpy(ar_params_find(&st, "v")->x, ps->v, ps->total * sizeof(float));
    if ((s = ar_params_save(&st, path, &meta)) != AR_OK) memcpy(ps->err, st.err, AR_ERR_LEN);
    ar_params_free(&st);
    ar_meta_free(&meta);
    return s;
}

static int ar__meta_float(const ar_meta *m, const char *key, float *out)
{
    const char *s = ar_meta_get(m, key);
    char *end;
    double v;
    if (!s || !*s) return 0;
    v = strtod(s, &end);
    if (*end || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

ARDEF ar_status ar_optim_load(ar_optim *o, ar_params *ps, ar_rng *rng, ar_meta *extra_out, const char *path)
{
    unsigned char *buf = NULL;
    size_t len;
    ar_meta meta;
    ar_params st;
    ar_optim n;
    ar_rng r;
    uint64_t step = 0, has = 0;
    const char *kind, *rs;
    float *m = NULL, *v = NULL;
    int k, i;
    ar_status s;
    if (!ps) return AR_ERR_ARG;
    if (!o || !ps->x) { ar__seterr(ps->err, "ar_optim_load: need an optimizer and allocated parameters"); return AR_ERR_ARG; }
    ar_params_init(&st);
    if ((s = ar__read_file(path, &buf, &len, ps->err)) != AR_OK) return s;
    ar_meta_init(&meta);
    if ((s = ar__st_read_meta(buf, len, &meta, ps->err)) != AR_OK) goto done;
    if (!ar_meta_get(&meta, "ar.model") || strcmp(ar_meta_get(&meta, "ar.model"), "optim")) {
        ar__seterr(ps->err, "not an optimizer state (ar.model is not \"optim\")");
        s = AR_ERR_FORMAT;
        goto done;
    }
    s = AR_ERR_FORMAT;
    memset(&n, 0, sizeof n);
    kind = ar_meta_get(&meta, "optim");
    for (k = 0; kind && k < 4 && strcmp(kind, ar__optim_names[k]); k++) {}
    if (!kind || k == 4 || !ar__meta_u64(&meta, "step", &step) || !ar__meta_u64(&meta, "moments", &has) ||
        has > 3 || !ar__meta_float(&meta, "lr", &n.lr) || !ar__meta_float(&meta, "momentum", &n.momentum) ||
        !ar__meta_float(&meta, "beta1", &n.beta1) || !ar__meta_float(&meta, "beta2", &n.beta2) ||
        !ar__meta_float(&meta, "eps", &n.eps) || !ar__meta_float(&meta, "weight_decay", &n.weight_decay)) {
        ar__seterr(ps->err, "malformed optimizer state in __metadata__");
        goto done;
    }
    {
        char lay[17];
        const char *fl = ar_meta_get(&meta, "layout");
        ar__layout_hex(ps, lay);
        if (fl && strcmp(fl, lay)) { /* absent in states of 0.4 */
            ar__seterr(ps->err, "an optimizer state of another parameter set (names or shapes differ)");
            goto done;
        }
    }
    n.kind = (ar_optim_kind)k;
    n.step = (long)step;
    r.s[0] = r.s[1] = r.s[2] = r.s[3] = 0;
    if (rng) {
        rs = ar_meta_get(&meta, "rng");
        for (i = 0; rs && strlen(rs) == 64 && i < 4; i++) {
            char part[17], *end;
            memcpy(part, rs + 16 * i, 16);
            part[16] = 0;
            r.s[i] = (uint64_t)strtoull(part, &end, 16);
            if (*end) break;
        }
        if (i < 4) { ar__seterr(ps->err, "no RNG state (or a malformed one) in the optimizer file"); goto done; }
    }
    if ((s = ar__optim_tensors(&st, ps, (int)has)) == AR_OK && !has) {
        int one[1] = {1};
        s = ar_params_add(&st, "none", 1, one) ? ar_params_alloc(&st) : AR_ERR_NOMEM;
    }
    if (s != AR_OK) { ar__seterr(ps->err, "ar_optim_load: out of memory or too many parameters"); goto done; }
    if ((s = ar_params_load_mem(&st, buf, len, NULL)) != AR_OK) { memcpy(ps->err, st.err, AR_ERR_LEN); goto done; }
    s = AR_ERR_NOMEM;
    if ((has & 1) && !ps->m && !(m = (float *)ar__malloc(ps->total * sizeof(float)))) goto done;
    if ((has & 2) && !ps->v && !(v = (float *)ar__malloc(ps->total * sizeof(float)))) { AR_FREE(m); goto done; }
    /* all checked: commit (moments the file lacks are dropped, as in a fresh run) */
    if (!(has & 1)) { AR_FREE(ps->m); ps->m = NULL; }
    if (!(has & 2)) { AR_FREE(ps->v); ps->v = NULL; }
    if (m) ps->m = m;
    if (v) ps->v = v;
    if (has & 1) memcpy(ps->m, ar_params_find(&st, "m")->x, ps->total * sizeof(float));
    if (has & 2) memcpy(ps->v, ar_params_find(&st, "v")->x, ps->total * sizeof(float));
    *o = n;
    if (rng) *rng = r;
    if (extra_out) {
        ar_meta_free(extra_out);
        *extra_out = meta;
        ar_meta_init(&meta);
    }
    s = AR_OK;
done:
    if (s != AR_OK && s != AR_ERR_FORMAT && s != AR_ERR_IO && !ps->err[0]) ar__seterr(ps->err, "ar_optim_load failed");
    if (s != AR_OK && path) ar__err_path(ps->err, path);
    ar_params_free(&st);
    ar_meta_free(&meta);
    AR_FREE(buf);
    return s;
}

/* ==== SECTION: models — common ============================================= */

static const char *const ar__kind_names[AR_KIND_COUNT] = {"made",     "fvsbn",    "nade",  "rnade",
                                                          "transformer", "pixelcnn", "gated", "wavenet"};

ARDEF const char *ar_kind_name(ar_kind kind)
{
    return (int)kind >= 0 && (int)kind < AR_KIND_COUNT ? ar__kind_names[kind] : NULL;
}

ARDEF int ar_kind_parse(const char *name)
{
    int k;
    for (k = 0; name && k < AR_KIND_COUNT; k++)
        if (!strcmp(name, ar__kind_names[k])) return k;
    return -1;
}

static int ar__is_cnn(int kind) { return kind >= AR_PIXELCNN && kind <= AR_WAVENET; }

/* Every failing model call ends here: the message into m->err, the status back. */
static ar_status ar__merr(ar_model *m, ar_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, AR_ERR_LEN, fmt, ap);
    va_end(ap);
    if (!m->err[0]) snprintf(m->err, AR_ERR_LEN, "%s", ar_status_str(s));
    return s;
}

/* Starts a model call: clears the message, then checks that m holds a model
   of one of `kinds` (bits 1 << kind; 0: any). */
static ar_status ar__model_ok(ar_model *m, const char *who, unsigned kinds)
{
    if (!m) return AR_ERR_ARG;
    m->err[0] = 0;
    if (!m->ps.x || (int)m->kind < 0 || (int)m->kind >= AR_KIND_COUNT || (!m->made && !m->nade && !m->tfm && !m->cnn))
        return ar__merr(m, AR_ERR_ARG, "%s: the model is not initialized (ar_model_init or ar_model_load)", who);
    if (kinds && !((kinds >> m->kind) & 1u))
        return ar__merr(m, AR_ERR_ARG, "%s: not for a %s model", who, ar__kind_names[m->kind]);
    return AR_OK;
}

/* 1 <= N, and N*D values addressable with an int. */
static ar_status ar__model_n(ar_model *m, const char *who, int N)
{
    if (N < 1) return ar__merr(m, AR_ERR_ARG, "%s: N = %d, need N >= 1", who, N);
    if ((size_t)N * (size_t)m->D > 0x7fffffff)
        return ar__merr(m, AR_ERR_RANGE, "%s: N*D = %d*%d values do not fit an int index", who, N, m->D);
    return AR_OK;
}

/* A graph call that failed on its model fails the graph too (sticky). */
static void ar__fail_graph(ar_graph *g, const ar_model *m, ar_status s, const char *who)
{
    if (g && m) ar__fail(g, s, "%s", m->err);
    else if (g) ar__fail(g, s, "%s: model is NULL", who);
}

/* The one check every family's data goes through: x [N*D] (only where
   known is set, if known is given) in the domain m->levels describes. */
static ar_status ar__check_data(ar_model *m, const char *who, const float *x, const unsigned char *known, int N)
{
    size_t i, n = (size_t)N * (size_t)m->D;
    int L = m->levels, logit = m->nade && m->nade->cfg.transform == AR_TRANSFORM_LOGIT;
    for (i = 0; i < n; i++) {
        float v = x[i];
        if (known && !known[i]) continue;
        if (!isfinite(v))
            return ar__merr(m, AR_ERR_NUMERIC, "%s: example %zu, dimension %zu is %g", who, i / (size_t)m->D,
                            i % (size_t)m->D, (double)v);
        if (L == 2 ? v != 0 && v != 1 : L > 2 ? v < 0 || v >= (float)L || v != floorf(v) : logit && (v < 0 || v > 1)) {
            char dom[48];
            if (L == 2) snprintf(dom, sizeof dom, "0 or 1");
            else if (L > 2) snprintf(dom, sizeof dom, "an integer in [0,%d)", L);
            else snprintf(dom, sizeof dom, "in [0,1] (the logit transform)");
            return ar__merr(m, AR_ERR_RANGE, "%s: example %zu, dimension %zu is %.9g, not %s", who, i / (size_t)m->D,
                            i % (size_t)m->D, (double)v, dom);
        }
    }
    return AR_OK;
}

/* The model's scratch graph for log_prob and sample, made at first use. */
static ar_graph *ar__work(ar_model *m)
{
    ar_graph *g = (ar_graph *)m->work;
    if (g) {
        ar_graph_reset(g);
        ar_graph_set_grad(g, 0);
        return g;
    }
    if (!(g = (ar_graph *)ar__malloc(sizeof *g))) return NULL;
    if (ar_graph_init(g, 0) != AR_OK) {
        AR_FREE(g);
        return NULL;
    }
    ar_graph_set_grad(g, 0);
    m->work = g;
    return g;
}

/* ---- drawing values: the one sampler behind every discrete head ------------- */

ARDEF ar_sample_opts ar_sample_defaults(void)
{
    ar_sample_opts o;
    memset(&o, 0, sizeof o);
    o.temperature = 1;
    return o;
}

/* Why the options are unusable, or NULL. */
static const char *ar__opts_bad(const ar_sample_opts *o)
{
    if (!(o->temperature >= 0) || !isfinite(o->temperature)) return "temperature must be finite and >= 0 (0: greedy)";
    if (o->top_k < 0) return "top_k must be >= 0 (0: off)";
    if (!(o->top_p >= 0 && o->top_p <= 1)) return "top_p must be in [0,1] (0 or 1: off)";
    if (o->naive != 0 && o->naive != 1) return "naive must be 0 or 1";
    return NULL;
}

typedef struct { float p; int i; } ar__pi;

/* Descending probability, ties by index: a total order, so results do not
   depend on the sort. */
static int ar__pi_before(const ar__pi *a, const ar__pi *b) { return a->p > b->p || (a->p == b->p && a->i < b->i); }
static int ar__pi_cmp(const void *a, const void *b)
{
    return ar__pi_before((const ar__pi *)a, (const ar__pi *)b) ? -1 : ar__pi_before((const ar__pi *)b, (const ar__pi *)a);
}

/* Moves the k first of a[0..n) (in ar__pi_before's order) to the front,
   in some order: quickselect, O(n) on average. */
static void ar__select(ar__pi *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        ar__pi piv = a[lo + (hi - lo) / 2], t;
        int i = lo, j = hi;
        while (i <= j) {
            while (ar__pi_before(&a[i], &piv)) i++;
            while (ar__pi_before(&piv, &a[j])) j--;
            if (i <= j) { t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* The distribution o draws from for logits[V], into scratch[0..V) (scratch:
   3V floats). Returns the most likely index (the greedy choice), or -1
   for NaN or all -inf logits. Temperature first, then top-k, then top-p
   on what top-k left. */
static int ar__dist(const float *logits, int V, const ar_sample_opts *o, float *scratch)
{
    float *p = scratch, mx = -INFINITY, T = o->temperature;
    ar__pi *ix = (ar__pi *)(void *)(scratch + V);
    double z = 0;
    int i, j = -1, keep = V;
    for (i = 0; i < V; i++) {
        if (logits[i] != logits[i]) return -1;
        if (logits[i] > mx) { mx = logits[i]; j = i; }
    }
    if (j < 0) return -1;
    if (T == 0 || o->top_k == 1 || mx == INFINITY) {
        memset(p, 0, (size_t)V * sizeof(float));
        p[j] = 1;
        return j;
    }
    for (i = 0; i < V; i++) z += p[i] = ar__expf((logits[i] - mx) / T); /* <= 0 exponents: no overflow */
    if ((o->top_k > 0 && o->top_k < V) || (o->top_p > 0 && o->top_p < 1)) {
        for (i = 0; i < V; i++) { ix[i].p = p[i]; ix[i].i = i; }
        if (o->top_k > 0 && o->top_k < V) {
            ar__select(ix, V, o->top_k);
            keep = o->top_k;
        }
        if (o->top_p > 0 && o->top_p < 1) {
            double cum = 0, kept = 0;
            qsort(ix, (size_t)keep, sizeof *ix, ar__pi_cmp);
            for (i = 0; i < keep; i++) kept += ix[i].p;
            for (i = 0; i < keep; i++)
                if ((cum += ix[i].p) >= o->top_p * kept) { keep = i + 1; break; }
        }
        memset(p, 0, (size_t)V * sizeof(float));
        for (z = 0, i = 0; i < keep; i++) z += p[ix[i].i] = ix[i].p;
    }
    for (i = 0; i < V; i++) p[i] = (float)(p[i] / z);
    return j;
}

/* A value from a head of P logits (P == 1: one Bernoulli logit z, the pair
   {0, z}). probs (may be NULL) gets the distribution (P == 1: p(1)).
   draw = 0 only computes the distribution and returns the most likely
   value (as a greedy draw would). -1 for NaN logits. */
static int ar__draw(const float *logit, int P, const ar_sample_opts *o, ar_rng *r, float *scratch, float *probs,
                    int draw)
{
    float two[2];
    const float *l = logit;
    int V = P, j;
    if (P == 1) { two[0] = 0; two[1] = logit[0]; l = two; V = 2; }
    if ((j = ar__dist(l, V, o, scratch)) < 0) return -1;
    if (probs) { /* two values are binary data: p(1) */
        if (V == 2) probs[0] = scratch[1];
        else memcpy(probs, scratch, (size_t)V * sizeof(float));
    }
    if (!draw || o->temperature == 0 || o->top_k == 1) return j;
    return ar_rng_categorical(r, scratch, V);
}

ARDEF int ar_sample_logits(const float *logits, int V, const ar_sample_opts *opts, ar_rng *rng, float *scratch)
{
    int j;
    if (!logits || V < 1 || V > (1 << 24) || !opts || !rng || !scratch || ar__opts_bad(opts)) return -1;
    if ((j = ar__dist(logits, V, opts, scratch)) < 0) return -1;
    return opts->temperature == 0 || opts->top_k == 1 ? j : ar_rng_categorical(rng, scratch, V);
}

/* ==== SECTION: models — MADE / FVSBN ======================================= */

static size_t ar__made_units(const ar_made_cfg *c)
{
    size_t n = 0;
    int l;
    for (l = 0; l < c->n_hidden; l++) n += (size_t)c->hidden[l];
    return n;
}

/* Checks the configuration and declares the parameters (W0 b0 .. V c A). */
static ar_status ar__made_declare(ar_model *m, const int *order)
{
    ar_made_cfg *c = &m->cfg.made;
    ar_made *md;
    int D = m->D, L = c->n_hidden, K, l, shape[2], prev;
    size_t units;
    char name[16];
    if (L < 0 || L > AR_MADE_MAX_HIDDEN)
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: made.n_hidden = %d, need 0..%d", L, AR_MADE_MAX_HIDDEN);
    if (m->kind == AR_FVSBN && (L != 0 || c->direct != 1))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: an FVSBN has made.n_hidden = 0 and made.direct = 1 (%d, %d)",
                        L, c->direct);
    if (m->kind == AR_MADE && L == 0)
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: a MADE needs a hidden layer (without one it is AR_FVSBN)");
    if (L > 0 && D < 2) return ar__merr(m, AR_ERR_ARG, "ar_model_init: a MADE needs D >= 2");
    if (D > (1 << 20)) return ar__merr(m, AR_ERR_ARG, "ar_model_init: D = %d, need D <= 2^20", D);
    for (l = 0; l < L; l++)
        if (c->hidden[l] < 1 || c->hidden[l] > (1 << 20))
            return ar__merr(m, AR_ERR_ARG, "ar_model_init: made.hidden[%d] = %d, need 1..2^20", l, c->hidden[l]);
    if (c->n_masks < 1 || c->n_masks > 4096)
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: made.n_masks = %d, need 1..4096", c->n_masks);
    if ((c->direct != 0 && c->direct != 1) || (c->order_agnostic != 0 && c->order_agnostic != 1))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: made.direct and made.order_agnostic are 0 or 1 (%d, %d)",
                        c->direct, c->order_agnostic);
    if (order) c->order_agnostic = 0; /* a given order is every set's order */
    K = c->n_masks;
    units = ar__made_units(c);
    if (!(md = (ar_made *)ar__malloc(sizeof *md))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    memset(md, 0, sizeof *md);
    m->made = md;
    md->cfg = *c;
    md->D = D;
    m->levels = 2;
    prev = D;
    for (l = 0; l < L; l++) {
        shape[0] = c->hidden[l]; shape[1] = prev;
        snprintf(name, sizeof name, "W%d", l);
        md->W[l] = ar_params_add(&m->ps, name, 2, shape);
        snprintf(name, sizeof name, "b%d", l);
        md->b[l] = ar_params_add(&m->ps, name, 1, shape);
        if (!md->W[l] || !md->b[l]) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
        prev = c->hidden[l];
    }
    shape[0] = D; shape[1] = prev;
    if (L > 0 && !(md->V = ar_params_add(&m->ps, "V", 2, shape))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
    if (!(md->c = ar_params_add(&m->ps, "c", 1, shape))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
    shape[1] = D;
    if (c->direct && !(md->A = ar_params_add(&m->ps, "A", 2, shape)))
        return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
    md->orders = (int *)ar__malloc((size_t)K * D * sizeof(int));
    md->labels = (int *)ar__malloc((units ? (size_t)K * units : 1) * sizeof(int));
    md->pos = (int *)ar__malloc((size_t)D * sizeof(int));
    if (!md->orders || !md->labels || !md->pos) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    if (order) {
        memcpy(md->orders, order, (size_t)D * sizeof(int));
        m->cfg.order = md->orders;
    }
    return AR_OK;
}

/* Makes mask set k current: pos from its ordering. */
static void ar__made_set(ar_made *md, int k)
{
    const int *ord = md->orders + (size_t)k * md->D;
    int d;
    for (d = 0; d < md->D; d++) md->pos[ord[d]] = d + 1;
    md->cur = k;
}

/* Orderings and labels from one stream, weights from another, so the masks
   of a configuration never depend on how it is initialized (0.4 files,
   which stored only the seed, rebuild their masks through here). */
static void ar__made_fill(ar_model *m)
{
    ar_made *md = m->made;
    const ar_made_cfg *c = &md->cfg;
    ar_rng rng;
    int k, l, d, D = md->D, L = c->n_hidden;
    size_t u, units = ar__made_units(c);
    ar_rng_seed(&rng, m->cfg.seed);
    for (k = 0; k < c->n_masks; k++) {
        int *ord = md->orders + (size_t)k * D, *lab = md->labels + (size_t)k * units, lo = 1;
        if (!m->cfg.order) for (d = 0; d < D; d++) ord[d] = d;
        else if (k) memcpy(ord, md->orders, (size_t)D * sizeof(int));
        if (c->order_agnostic) ar_rng_shuffle(&rng, ord, D);
        for (l = 0; l < L; l++) {
            int next = D - 1;
            for (u = 0; u < (size_t)c->hidden[l]; u++) {
                lab[u] = lo + (int)ar_rng_below(&rng, (uint32_t)(D - lo));
                if (lab[u] < next) next = lab[u];
            }
            lab += c->hidden[l];
            lo = next;
        }
    }
    ar_rng_seed(&rng, m->cfg.seed ^ 0x5eed5eed5eed5eedULL);
    for (l = 0; l < L; l++) ar_init_xavier(md->W[l], &rng);
    if (md->V) ar_init_xavier(md->V, &rng);
    if (md->A && L > 0) ar_init_uniform(md->A, &rng, -0.01f, 0.01f); /* starts as a small correction */
    ar__made_set(md, 0);
}

/* The labels of the current set: inputs and outputs are labelled by their
   1-based place (pos), hidden layer l by labels[l]. A layer keeps
   out >= in between hidden layers and out > in into the outputs. */
static const int *ar__made_labels(const ar_made *md, int l)
{
    const int *lab = md->labels + (size_t)md->cur * ar__made_units(&md->cfg);
    int j;
    if (l < 0 || l == md->cfg.n_hidden) return md->pos;
    for (j = 0; j < l; j++) lab += md->cfg.hidden[j];
    return lab;
}

/* W[o][i] where out[o] >= in[i] + strict, else 0 (ar_masked_linear's rule),
   spelled out for the sampler's one-unit-at-a-time products. */
static void ar__made_masked(const ar_tensor *W, const int *out, const int *in, int strict, float *Wm)
{
    int O = W->shape[0], In = W->shape[1], o, i;
    for (o = 0; o < O; o++)
        for (i = 0; i < In; i++)
            Wm[(size_t)o * In + i] = (long long)out[o] >= (long long)in[i] + strict ? W->x[(size_t)o * In + i] : 0;
}

static ar_tensor *ar__made_logits(const ar_made *md, ar_graph *g, ar_tensor *x)
{
    ar_tensor *h, *out;
    int l, L = md->cfg.n_hidden;
    if (!ar__check(g, "ar_made_logits", x, NULL, 1)) return NULL;
    if (x->nd != 2 || x->shape[1] != md->D) {
        ar__fail(g, AR_ERR_SHAPE, "ar_made_logits: x must be [N,%d], has rank %d, last dim %d", md->D, x->nd,
                 x->shape[x->nd - 1]);
        return NULL;
    }
    h = x;
    for (l = 0; l < L; l++)
        h = ar_relu(g, ar_masked_linear(g, h, md->W[l], md->b[l], ar__made_labels(md, l), ar__made_labels(md, l - 1), 0));
    if (md->V) {
        out = ar_masked_linear(g, h, md->V, md->c, md->pos, ar__made_labels(md, L - 1), 1);
        if (md->A) out = ar_add(g, out, ar_masked_linear(g, x, md->A, NULL, md->pos, md->pos, 1));
    } else {
        out = ar_masked_linear(g, x, md->A, md->c, md->pos, md->pos, 1);
    }
    return out;
}

/* -log p(x) [N] under mask set k (-1: the current one). The masked layers
   copy the labels, so switching back afterwards leaves the graph intact. */
static ar_tensor *ar__made_nll(ar_made *md, ar_graph *g, const float *x, int N, int k)
{
    int shape[2], cur = md->cur;
    ar_tensor *t;
    shape[0] = N;
    shape[1] = md->D;
    if (k >= 0) ar__made_set(md, k);
    t = ar_bce_logits(g, ar__made_logits(md, g, ar_input(g, x, 2, shape)), x);
    if (k >= 0) ar__made_set(md, cur);
    return t;
}

/* log p(x) under set k, or (k = -1) the log-mean-exp over all K sets,
   streaming: each set's pass hands its arena back to the next. */
static ar_status ar__made_log_prob(ar_model *m, ar_graph *g, const float *x, int N, int k, float *out)
{
    ar_made *md = m->made;
    int j, n, K = md->cfg.n_masks, lo = k < 0 ? 0 : k, hi = k < 0 ? K : k + 1;
    double *acc = (double *)ar_graph_alloc(g, 2 * (size_t)N * sizeof(double)); /* running max, sum */
    ar__mark mark;
    if (!acc) return ar__merr(m, AR_ERR_NOMEM, "ar_model_log_prob: out of memory");
    mark = ar__graph_mark(g);
    for (j = lo; j < hi; j++) {
        ar_tensor *nll = ar__made_nll(md, g, x, N, j);
        if (!nll) return ar__merr(m, g->status, "%s", g->err);
        for (n = 0; n < N; n++) {
            double lp = -(double)nll->x[n];
            if (j == lo) { acc[2 * n] = lp; acc[2 * n + 1] = 1; continue; }
            if (lp > acc[2 * n]) { acc[2 * n + 1] = acc[2 * n + 1] * exp(acc[2 * n] - lp) + 1; acc[2 * n] = lp; }
            else acc[2 * n + 1] += exp(lp - acc[2 * n]);
        }
        ar__graph_rewind(g, &mark);
    }
    for (n = 0; n < N; n++) out[n] = (float)(acc[2 * n] + log(acc[2 * n + 1] / (hi - lo)));
    return AR_OK;
}

/* N samples under the current mask set, one place at a time; each hidden
   unit is computed once, when its inputs are final, so a sample costs one
   forward pass. */
static ar_status ar__made_sample_set(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *rng,
                                     const float *given, const unsigned char *known, float *x, float *probs)
{
    const ar_made *md = m->made;
    const ar_made_cfg *c = &md->cfg;
    const int *ord = md->orders + (size_t)md->cur * md->D, *lab;
    float *Wm[AR_MADE_MAX_HIDDEN], *H[AR_MADE_MAX_HIDDEN], *Vm = NULL, *Am = NULL, *logit, *tmp, scratch[6];
    int *by_label[AR_MADE_MAX_HIDDEN], *start[AR_MADE_MAX_HIDDEN];
    int l, t, u, n, d, D = md->D, L = c->n_hidden;
    for (l = 0; l < L; l++) { /* masked weights, activations, units grouped by label */
        lab = ar__made_labels(md, l);
        Wm[l] = (float *)ar_graph_alloc(g, md->W[l]->n * sizeof(float));
        H[l] = (float *)ar_graph_alloc(g, (size_t)N * c->hidden[l] * sizeof(float));
        by_label[l] = (int *)ar_graph_alloc(g, (size_t)c->hidden[l] * sizeof(int));
        start[l] = (int *)ar_graph_alloc(g, ((size_t)D + 1) * sizeof(int));
        if (!Wm[l] || !H[l] || !by_label[l] || !start[l]) goto nomem;
        memset(H[l], 0, (size_t)N * c->hidden[l] * sizeof(float)); /* masked, but 0 * NaN would leak */
        ar__made_masked(md->W[l], lab, ar__made_labels(md, l - 1), 0, Wm[l]);
        memset(start[l], 0, ((size_t)D + 1) * sizeof(int));
        for (u = 0; u < c->hidden[l]; u++) start[l][lab[u] + 1]++; /* counting sort by label */
        for (t = 0; t < D; t++) start[l][t + 1] += start[l][t];
        for (u = 0; u < c->hidden[l]; u++) by_label[l][start[l][lab[u]]++] = u;
        for (t = D; t > 0; t--) start[l][t] = start[l][t - 1];
        start[l][0] = 0;
    }
    if (md->V) {
        if (!(Vm = (float *)ar_graph_alloc(g, md->V->n * sizeof(float)))) goto nomem;
        ar__made_masked(md->V, md->pos, ar__made_labels(md, L - 1), 1, Vm);
    }
    if (md->A) {
        if (!(Am = (float *)ar_graph_alloc(g, md->A->n * sizeof(float)))) goto nomem;
        ar__made_masked(md->A, md->pos, md->pos, 1, Am);
    }
    logit = (float *)ar_graph_alloc(g, (size_t)N * sizeof(float));
    tmp = (float *)ar_graph_alloc(g, (size_t)N * sizeof(float));
    if (!logit || !tmp) goto nomem;
    memset(x, 0, (size_t)N * D * sizeof(float)); /* unsampled inputs are masked out anyway */
    for (t = 0; t < D; t++) {
        for (l = 0; l < L; l++) { /* hidden units labelled t see only places < t: all final now */
            const float *prev = l ? H[l - 1] : x;
            int fan = l ? c->hidden[l - 1] : D, Hl = c->hidden[l], q;
            for (q = start[l][t]; q < start[l][t + 1]; q++) {
                u = by_label[l][q];
                ar__gemm(0, 1, N, 1, fan, 1, prev, fan, Wm[l] + (size_t)u * fan, fan, 0, tmp, 1);
                for (n = 0; n < N; n++) {
                    float a = tmp[n] + md->b[l]->x[u];
                    H[l][(size_t)n * Hl + u] = a > 0 ? a : 0;
                }
            }
        }
        d = ord[t];
        for (n = 0; n < N; n++) logit[n] = md->c->x[d];
        if (Vm) ar__gemm(0, 1, N, 1, c->hidden[L - 1], 1, H[L - 1], c->hidden[L - 1], Vm + (size_t)d * c->hidden[L - 1],
                         c->hidden[L - 1], 1, logit, 1);
        if (Am) ar__gemm(0, 1, N, 1, D, 1, x, D, Am + (size_t)d * D, D, 1, logit, 1);
        for (n = 0; n < N; n++) {
            size_t k = (size_t)n * D + d;
            int obs = known && known[k], v = ar__draw(logit + n, 1, o, rng, scratch, probs ? probs + k : NULL, !obs);
            if (v < 0) return ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN logit at dimension %d", d);
            x[k] = obs ? given[k] : (float)v;
        }
    }
    return AR_OK;
nomem:
    return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
}

/* Each example's mask set drawn from the posterior given its known values:
   w_k proportional to the product over known places of set k's
   conditionals (the likelihood of the known values when they come first
   in the order; unknown values read as 0). */
static ar_status ar__made_posterior(ar_model *m, ar_graph *g, int N, const float *given, const unsigned char *known,
                                    ar_rng *rng, int *set)
{
    ar_made *md = m->made;
    int K = md->cfg.n_masks, D = md->D, k, n, d, shape[2];
    float *xk = (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float));
    double *lw = (double *)ar_graph_alloc(g, (size_t)N * K * sizeof(double));
    float *w = (float *)ar_graph_alloc(g, (size_t)K * sizeof(float));
    ar__mark mark;
    if (!xk || !lw || !w) return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    for (n = 0; n < N * D; n++) xk[n] = known[n] ? given[n] : 0;
    shape[0] = N;
    shape[1] = D;
    mark = ar__graph_mark(g);
    for (k = 0; k < K; k++) {
        int cur = md->cur;
        ar_tensor *z;
        ar__made_set(md, k);
        z = ar__made_logits(md, g, ar_input(g, xk, 2, shape));
        ar__made_set(md, cur);
        if (!z) return ar__merr(m, g->status, "%s", g->err);
        for (n = 0; n < N; n++) {
            double s = 0;
            for (d = 0; d < D; d++) {
                size_t i = (size_t)n * D + d;
                if (known[i]) s += xk[i] * z->x[i] - ar__softplus(z->x[i]); /* log p(x_d | x_<d) */
            }
            lw[(size_t)n * K + k] = s;
        }
        ar__graph_rewind(g, &mark);
    }
    for (n = 0; n < N; n++) {
        double mx = -INFINITY;
        for (k = 0; k < K; k++) mx = lw[(size_t)n * K + k] > mx ? lw[(size_t)n * K + k] : mx;
        for (k = 0; k < K; k++) w[k] = (float)exp(lw[(size_t)n * K + k] - mx);
        if ((set[n] = ar_rng_categorical(rng, w, K)) < 0)
            return ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN in the mask sets' posterior");
    }
    return AR_OK;
}

/* Samples of the mixture of the K mask sets: each example draws its set,
   then each set samples its examples as one batch. */
static ar_status ar__made_sample(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *rng, float *x)
{
    ar_made *md = m->made;
    int K = md->cfg.n_masks, D = md->D, cur = md->cur, k, n, cnt;
    int *set, *idx;
    float *xs, *gs = NULL, *ps = NULL;
    unsigned char *ks = NULL;
    ar_status s = AR_OK;
    if (K == 1) return ar__made_sample_set(m, g, N, o, rng, o->given, o->known, x, o->probs);
    set = (int *)ar_graph_alloc(g, 2 * (size_t)N * sizeof(int));
    xs = (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float));
    if (o->known) {
        gs = (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float));
        ks = (unsigned char *)ar_graph_alloc(g, (size_t)N * D);
    }
    if (o->probs) ps = (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float));
    if (!set || !xs || (o->known && (!gs || !ks)) || (o->probs && !ps))
        return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    idx = set + N;
    if (!o->known) {
        for (n = 0; n < N; n++) set[n] = (int)ar_rng_below(rng, (uint32_t)K);
    } else if ((s = ar__made_posterior(m, g, N, o->given, o->known, rng, set)) != AR_OK) {
        return s;
    }
    for (k = 0; k < K && s == AR_OK; k++) {
        ar__mark mark;
        for (cnt = 0, n = 0; n < N; n++)
            if (set[n] == k) idx[cnt++] = n;
        if (!cnt) continue;
        for (n = 0; o->known && n < cnt; n++) {
            memcpy(gs + (size_t)n * D, o->given + (size_t)idx[n] * D, (size_t)D * sizeof(float));
            memcpy(ks + (size_t)n * D, o->known + (size_t)idx[n] * D, (size_t)D);
        }
        ar__made_set(md, k);
        mark = ar__graph_mark(g);
        s = ar__made_sample_set(m, g, cnt, o, rng, gs, ks, xs, ps);
        ar__graph_rewind(g, &mark);
        for (n = 0; s == AR_OK && n < cnt; n++) {
            memcpy(x + (size_t)idx[n] * D, xs + (size_t)n * D, (size_t)D * sizeof(float));
            if (ps) memcpy(o->probs + (size_t)idx[n] * D, ps + (size_t)n * D, (size_t)D * sizeof(float));
        }
    }
    ar__made_set(md, cur);
    return s;
}

ARDEF ar_status ar_made_set_mask(ar_model *m, int k)
{
    ar_status s = ar__model_ok(m, "ar_made_set_mask", 1u << AR_MADE | 1u << AR_FVSBN);
    if (s != AR_OK) return s;
    if (k < 0 || k >= m->made->cfg.n_masks)
        return ar__merr(m, AR_ERR_ARG, "ar_made_set_mask: mask set %d outside [0,%d)", k, m->made->cfg.n_masks);
    ar__made_set(m->made, k);
    return AR_OK;
}

ARDEF ar_tensor *ar_made_logits(ar_model *m, ar_graph *g, ar_tensor *x)
{
    ar_status s = ar__model_ok(m, "ar_made_logits", 1u << AR_MADE | 1u << AR_FVSBN);
    ar_tensor *t;
    if (s != AR_OK) {
        ar__fail_graph(g, m, s, "ar_made_logits");
        return NULL;
    }
    if (!g) { ar__merr(m, AR_ERR_ARG, "ar_made_logits: graph is NULL"); return NULL; }
    if (!(t = ar__made_logits(m->made, g, x))) ar__merr(m, g->status ? g->status : AR_ERR_ARG, "%s", g->err);
    return t;
}

/* ==== SECTION: models — NADE / RNADE ======================================= */

static ar_status ar__nade_declare(ar_model *m, const int *order)
{
    ar_nade_cfg *c = &m->cfg.nade;
    ar_nade *nd;
    int shape[3], D = m->D, d;
    if (m->kind == AR_NADE) c->K = c->transform = 0; /* binary: no mixture, no transform */
    if (D > (1 << 20) || c->H < 1 || c->H > (1 << 20))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: nade.H = %d and D = %d, need both in 1..2^20", c->H, D);
    if (m->kind == AR_RNADE && (c->K < 1 || c->K > AR_NADE_MAX_K))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: nade.K = %d, need 1..%d components", c->K, AR_NADE_MAX_K);
    if (c->transform != AR_TRANSFORM_NONE && c->transform != AR_TRANSFORM_LOGIT)
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: nade.transform = %d, need AR_TRANSFORM_NONE or _LOGIT", c->transform);
    if (!(nd = (ar_nade *)ar__malloc(sizeof *nd))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    memset(nd, 0, sizeof *nd);
    m->nade = nd;
    nd->cfg = *c;
    nd->D = D;
    m->levels = c->K ? 0 : 2;
    shape[0] = D; shape[1] = c->H;
    nd->W = ar_params_add(&m->ps, "W", 2, shape);
    nd->c = ar_params_add(&m->ps, "c", 1, shape + 1);
    if (c->K == 0) { /* V [D,H], b [D] */
        nd->V = ar_params_add(&m->ps, "V", 2, shape);
        nd->b = ar_params_add(&m->ps, "b", 1, shape);
    } else {         /* V [D,3K,H], b [D,3K]: logits, means, log-sigmas */
        shape[1] = 3 * c->K; shape[2] = c->H;
        nd->V = ar_params_add(&m->ps, "V", 3, shape);
        nd->b = ar_params_add(&m->ps, "b", 2, shape);
    }
    nd->order = (int *)ar__malloc((size_t)D * sizeof(int));
    if (!nd->W || !nd->V || !nd->c || !nd->b || !nd->order) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    for (d = 0; d < D; d++) nd->order[d] = order ? order[d] : d;
    if (order) m->cfg.order = nd->order;
    return AR_OK;
}

static void ar__nade_fill(ar_model *m)
{
    ar_nade *nd = m->nade;
    int d, k, K = nd->cfg.K;
    ar_rng rng;
    ar_rng_seed(&rng, m->cfg.seed);
    ar_init_uniform(nd->W, &rng, -0.05f, 0.05f);
    ar_init_uniform(nd->V, &rng, -0.05f, 0.05f);
    for (d = 0; K && d < nd->D; d++) /* spread the initial means over [-1,1] */
        for (k = 0; k < K; k++) nd->b->x[(size_t)d * 3 * K + K + k] = K > 1 ? -1.0f + 2.0f * k / (K - 1) : 0.0f;
}

/* ---- the NADE family's heads: P outputs per place ------------------------
   K = 0, Bernoulli: P = 1, the logit z.
   K > 0, mixture of K Gaussians (RNADE): P = 3K: component logits z_k,
   means mu_k, log standard deviations s_k. */
#define AR__LOG_SQRT_2PI 0.91893853320467274178

/* -log p(x | o); if grad, d(-log p)/do into grad[0..P). */
static double ar__head_nll(int K, const float *o, float x, float *grad)
{
    double mz = -INFINITY, sz = 0, ml = -INFINITY, sl = 0, lse;
    int k;
    if (K == 0) {
        if (grad) grad[0] = ar__sigmoid(o[0]) - x;
        return ar__softplus(o[0]) - x * o[0];
    }
    for (k = 0; k < K; k++) { /* log-softmax of z and log-sum-exp of the joint, in double */
        double e = (x - o[K + k]) * exp(-(double)o[2 * K + k]);
        double lj = o[k] - AR__LOG_SQRT_2PI - o[2 * K + k] - 0.5 * e * e;
        mz = o[k] > mz ? o[k] : mz;
        ml = lj > ml ? lj : ml;
    }
    for (k = 0; k < K; k++) {
        double e = (x - o[K + k]) * exp(-(double)o[2 * K + k]);
        sz += exp(o[k] - mz);
        sl += exp(o[k] - AR__LOG_SQRT_2PI - o[2 * K + k] - 0.5 * e * e - ml);
    }
    lse = mz + log(sz);                 /* log sum_k exp z_k */
    if (grad)
        for (k = 0; k < K; k++) {
            double e = (x - o[K + k]) * exp(-(double)o[2 * K + k]);
            double r = exp(o[k] - AR__LOG_SQRT_2PI - o[2 * K + k] - 0.5 * e * e - ml) / sl; /* responsibility */
            grad[k] = (float)(exp(o[k] - lse) - r);                  /* softmax - r */
            grad[K + k] = (float)(-r * e * exp(-(double)o[2 * K + k])); /* -r (x-mu)/sigma^2 */
            grad[2 * K + k] = (float)(r * (1 - e * e));              /* r (1 - e^2) */
        }
    return -(ml + log(sl) - lse);
}


/* A draw from a mixture head into *v and its conditional mean into *mean,
   under o: the component through the one sampler (temperature on the
   component logits), then mu + sqrt(T) sigma e; greedy: the mean of the
   most likely component. -1 for NaN logits. */
static int ar__mix_draw(int K, const float *o, const ar_sample_opts *opts, ar_rng *r, float *scratch, float *v,
                        float *mean, int draw)
{
    double mu = 0;
    int k, c = 0;
    if (K > 1) c = ar__draw(o, K, opts, r, scratch, NULL, draw);
    else if (o[0] != o[0]) c = -1;
    else scratch[0] = 1; /* one component: nothing to choose */
    if (c < 0) return -1;
    for (k = 0; k < K; k++) mu += scratch[k] * o[K + k];
    *mean = (float)mu;
    if (draw) *v = opts->temperature > 0 ? o[K + c] + sqrtf(opts->temperature) * ar__expf(o[2 * K + c]) * ar_rng_normal(r)
                                         : o[K + c];
    return 0;
}

/* The logit transform of RNADE's data: y = logit(l + (1 - 2l) x), l = 1e-6. */
#define AR__LAMBDA 1e-6
static float ar__to_logit(float x, double *logdet)
{
    double s = AR__LAMBDA + (1 - 2 * AR__LAMBDA) * x;
    *logdet += log(1 - 2 * AR__LAMBDA) - log(s) - log(1 - s);
    return (float)log(s / (1 - s));
}
static float ar__from_logit(float y)
{
    double x = (1 / (1 + exp(-(double)y)) - AR__LAMBDA) / (1 - 2 * AR__LAMBDA);
    return (float)(x < 0 ? 0 : x > 1 ? 1 : x); /* far tails round past the ends */
}

/* ---- the NADE recursion, batched by place --------------------------------
   For each place t (d = order[t]) over all N examples at once:
     Hs = sigmoid(A)                [N,H]
     O  = Hs V_d^T + b_d            [N,P]   (sgemm)
     A += x[:,d] W_d^T              [N,H]   (rank-1, sger)
   The backward walks the places in reverse and recovers A by subtraction.
   Saved: O for every place [D,N,P], the final A, and backward scratch
   (Hs, dA, dH [N,H]; dO [N,P]). */
typedef struct { const float *x; const int *order; } ar__nade_aux;

static ar_tensor *ar__nade_op(ar_graph *g, ar_tensor *W, ar_tensor *c, ar_tensor *V, ar_tensor *b, const int *order,
                              int K, const float *x, int N)
{
    int D = W->shape[0], H = W->shape[1], P = K ? 3 * K : 1, t, n, shape[1];
    size_t NH = (size_t)N * H, k;
    ar_tensor *src[4], *out;
    ar__nade_aux *aux;
    float *A, *Hs;
    src[0] = W; src[1] = c; src[2] = V; src[3] = b;
    shape[0] = N;
    out = ar__node_n(g, AR_OP_NADE, 1, shape, src, 4, NULL);
    if (!out) return NULL;
    aux = (ar__nade_aux *)ar_graph_alloc(g, sizeof *aux);
    out->save = (float *)ar_graph_alloc(g, ((size_t)D * N * P + 4 * NH + (size_t)N * P) * sizeof(float));
    if (!aux || !out->save) { ar__fail(g, AR_ERR_NOMEM, "nade: out of memory"); return NULL; }
    aux->x = x;
    aux->order = order;
    out->aux = aux;
    out->ip[0] = K;
    A = out->save + (size_t)D * N * P;
    Hs = A + NH;
    for (n = 0; n < N; n++) memcpy(A + (size_t)n * H, c->x, (size_t)H * sizeof(float));
    memset(out->x, 0, (size_t)N * sizeof(float));
    for (t = 0; t < D; t++) {
        int d = order[t];
        float *O = out->save + (size_t)t * N * P;
        for (k = 0; k < NH; k++) Hs[k] = ar__sigmoid(A[k]);
        for (n = 0; n < N; n++) memcpy(O + (size_t)n * P, b->x + (size_t)d * P, (size_t)P * sizeof(float));
        ar__gemm(0, 1, N, P, H, 1, Hs, H, V->x + (size_t)d * P * H, H, 1, O, P);
        for (n = 0; n < N; n++) out->x[n] += (float)ar__head_nll(K, O + (size_t)n * P, x[(size_t)n * D + d], NULL);
        ar__ger(N, H, 1, x + d, D, W->x + (size_t)d * H, A, H);
    }
    return out;
}

static void ar__nade_bwd(ar_tensor *t)
{
    const ar__nade_aux *aux = (const ar__nade_aux *)t->aux;
    ar_tensor *W = t->src[0], *c = t->src[1], *V = t->src[2], *b = t->src[3];
    int K = t->ip[0], D = W->shape[0], H = W->shape[1], P = K ? 3 * K : 1, N = (int)t->n, i, n, j;
    size_t NH = (size_t)N * H, k;
    float *dW = AR__DX(W), *dc = AR__DX(c), *dV = AR__DX(V), *db = AR__DX(b);
    float *A = t->save + (size_t)D * N * P, *Hs = A + NH, *dA = Hs + NH, *dH = dA + NH, *dO = dH + NH;
    memset(dA, 0, NH * sizeof(float));
    for (i = D - 1; i >= 0; i--) {
        int d = aux->order[i];
        const float *O = t->save + (size_t)i * N * P, *xd = aux->x + d;
        /* A_{t+1} = A_t + x_d W_d: dW_d += dA^T x_d, then step back */
        if (dW) ar__gemv(1, N, H, 1, dA, H, xd, D, 1, dW + (size_t)d * H, 1);
        ar__ger(N, H, -1, xd, D, W->x + (size_t)d * H, A, H);
        for (k = 0; k < NH; k++) Hs[k] = ar__sigmoid(A[k]);
        for (n = 0; n < N; n++) {
            float *go = dO + (size_t)n * P;
            ar__head_nll(K, O + (size_t)n * P, xd[(size_t)n * D], go);
            for (j = 0; j < P; j++) go[j] *= t->g[n];
            if (db)
                for (j = 0; j < P; j++) db[(size_t)d * P + j] += go[j];
        }
        if (dV) ar__gemm(1, 0, P, H, N, 1, dO, P, Hs, H, 1, dV + (size_t)d * P * H, H); /* dO^T Hs */
        ar__gemm(0, 0, N, H, P, 1, dO, P, V->x + (size_t)d * P * H, H, 0, dH, H);       /* dO V_d */
        for (k = 0; k < NH; k++) dA[k] += dH[k] * Hs[k] * (1.0f - Hs[k]);
    }
    if (dc)
        for (n = 0; n < N; n++)
            for (j = 0; j < H; j++) dc[j] += dA[(size_t)n * H + j];
}


/* -log p(x) [N]; with the logit transform, of x: the NADE of y minus the
   log-determinant of dy/dx. */
static ar_tensor *ar__nade_nll(ar_nade *nd, ar_graph *g, const float *x, int N)
{
    float *y, *ld;
    size_t n, i, D = (size_t)nd->D;
    int shape[1];
    if (nd->cfg.transform != AR_TRANSFORM_LOGIT) return ar__nade_op(g, nd->W, nd->c, nd->V, nd->b, nd->order, nd->cfg.K, x, N);
    y = (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float));
    ld = (float *)ar_graph_alloc(g, (size_t)N * sizeof(float));
    if (!y || !ld) { ar__fail(g, AR_ERR_NOMEM, "rnade: out of memory"); return NULL; }
    for (n = 0; n < (size_t)N; n++) {
        double logdet = 0;
        for (i = 0; i < D; i++) y[n * D + i] = ar__to_logit(x[n * D + i], &logdet);
        ld[n] = (float)logdet;
    }
    shape[0] = N;
    return ar_sub(g, ar__nade_op(g, nd->W, nd->c, nd->V, nd->b, nd->order, nd->cfg.K, y, N), ar_input(g, ld, 1, shape));
}

/* The forward recursion, drawing x_d as it goes (with the logit transform
   the recursion runs on y and x is mapped back at the end). */
static ar_status ar__nade_sample(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *r, float *x)
{
    const ar_nade *nd = m->nade;
    int n, t, D = nd->D, H = nd->cfg.H, K = nd->cfg.K, P = K ? 3 * K : 1, logit = nd->cfg.transform == AR_TRANSFORM_LOGIT;
    size_t k, NH = (size_t)N * H;
    float *A = (float *)ar_graph_alloc(g, (2 * NH + (size_t)N * P + 3 * (size_t)(K > 2 ? K : 2)) * sizeof(float));
    float *Hs, *O, *scratch, *y = logit ? (float *)ar_graph_alloc(g, (size_t)N * D * sizeof(float)) : x;
    if (!A || !y) return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    Hs = A + NH;
    O = Hs + NH;
    scratch = O + (size_t)N * P;
    for (n = 0; n < N; n++) memcpy(A + (size_t)n * H, nd->c->x, (size_t)H * sizeof(float));
    for (t = 0; t < D; t++) {
        int d = nd->order[t];
        for (k = 0; k < NH; k++) Hs[k] = ar__sigmoid(A[k]);
        for (n = 0; n < N; n++) memcpy(O + (size_t)n * P, nd->b->x + (size_t)d * P, (size_t)P * sizeof(float));
        ar__gemm(0, 1, N, P, H, 1, Hs, H, nd->V->x + (size_t)d * P * H, H, 1, O, P);
        for (n = 0; n < N; n++) {
            size_t i = (size_t)n * D + d;
            int obs = o->known && o->known[i], bad;
            float v = 0, mean;
            double unused = 0;
            if (K) {
                bad = ar__mix_draw(K, O + (size_t)n * P, o, r, scratch, &v, &mean, !obs);
                if (o->probs && !bad) o->probs[i] = mean;
            } else {
                bad = ar__draw(O + (size_t)n * P, 1, o, r, scratch, o->probs ? o->probs + i : NULL, !obs);
                v = (float)bad;
            }
            if (bad < 0) return ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN output at dimension %d", d);
            y[i] = !obs ? v : logit ? ar__to_logit(o->given[i], &unused) : o->given[i];
        }
        ar__ger(N, H, 1, y + d, D, nd->W->x + (size_t)d * H, A, H);
    }
    for (k = 0; logit && k < (size_t)N * D; k++) x[k] = o->known && o->known[k] ? o->given[k] : ar__from_logit(y[k]);
    return AR_OK;
}

/* ==== SECTION: models — Transformer decoder ================================ */

static ar_status ar__tfm_declare(ar_model *m, const int *order)
{
    const ar_tfm_cfg *c = &m->cfg.tfm;
    ar_tfm *tf;
    int l, T = m->D, s[2];
    char name[32];
    if (c->V < 2 || c->V >= (1 << 24) || T > (1 << 16) || c->d < 1 || c->d > (1 << 16) || c->heads < 1 ||
        c->d % c->heads || c->layers < 1 || c->layers > AR_TFM_MAX_LAYERS || c->ffn < 1 || c->ffn > (1 << 20) ||
        (c->pos != AR_POS_LEARNED && c->pos != AR_POS_SINUSOIDAL && c->pos != AR_POS_ROTARY) ||
        (c->pos == AR_POS_ROTARY && ((c->d / c->heads) % 2 || c->d / c->heads > 4096)))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: a Transformer needs 2 <= V < 2^24, D <= 65536 positions, d a "
                        "multiple of heads, 1..%d layers, ffn >= 1 and a known position scheme (rotary: even head "
                        "size) (V %d, D %d, d %d, heads %d, layers %d, ffn %d, pos %d)", AR_TFM_MAX_LAYERS, c->V, T,
                        c->d, c->heads, c->layers, c->ffn, c->pos);
    if (!(tf = (ar_tfm *)ar__malloc(sizeof *tf))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    memset(tf, 0, sizeof *tf);
    m->tfm = tf;
    tf->cfg = *c;
    tf->T = T;
    m->levels = c->V;
    if (order) { /* the order and its inverse (checked a permutation by the caller) */
        tf->order = (int *)ar__malloc((size_t)T * sizeof(int));
        tf->rank = (int *)ar__malloc((size_t)T * sizeof(int));
        if (!tf->order || !tf->rank) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
        memcpy(tf->order, order, (size_t)T * sizeof(int));
        ar__perm_bad(order, T, tf->rank);
        m->cfg.order = tf->order;
    }
#define AR__P2(field, nm, a, b) (s[0] = (a), s[1] = (b), (field) = ar_params_add(&m->ps, nm, 2, s))
#define AR__P1(field, nm, a) (s[0] = (a), (field) = ar_params_add(&m->ps, nm, 1, s))
    AR__P2(tf->tok, "tok", c->V + 1, c->d); /* row V: the start token */
    if (c->pos == AR_POS_LEARNED) AR__P2(tf->pos, "pos", T, c->d);
    for (l = 0; l < c->layers; l++) {
        ar_tfm_layer *L = &tf->L[l];
        snprintf(name, sizeof name, "h%d.ln1.g", l); AR__P1(L->ln1g, name, c->d);
        snprintf(name, sizeof name, "h%d.ln1.b", l); AR__P1(L->ln1b, name, c->d);
        snprintf(name, sizeof name, "h%d.qkv.W", l); AR__P2(L->Wqkv, name, 3 * c->d, c->d);
        snprintf(name, sizeof name, "h%d.qkv.b", l); AR__P1(L->bqkv, name, 3 * c->d);
        snprintf(name, sizeof name, "h%d.o.W", l); AR__P2(L->Wo, name, c->d, c->d);
        snprintf(name, sizeof name, "h%d.o.b", l); AR__P1(L->bo, name, c->d);
        snprintf(name, sizeof name, "h%d.ln2.g", l); AR__P1(L->ln2g, name, c->d);
        snprintf(name, sizeof name, "h%d.ln2.b", l); AR__P1(L->ln2b, name, c->d);
        snprintf(name, sizeof name, "h%d.mlp1.W", l); AR__P2(L->W1, name, c->ffn, c->d);
        snprintf(name, sizeof name, "h%d.mlp1.b", l); AR__P1(L->b1, name, c->ffn);
        snprintf(name, sizeof name, "h%d.mlp2.W", l); AR__P2(L->W2, name, c->d, c->ffn);
        snprintf(name, sizeof name, "h%d.mlp2.b", l); AR__P1(L->b2, name, c->d);
        if (!L->ln1g || !L->ln1b || !L->Wqkv || !L->bqkv || !L->Wo || !L->bo || !L->ln2g || !L->ln2b || !L->W1 ||
            !L->b1 || !L->W2 || !L->b2)
            return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
    }
    AR__P1(tf->lnfg, "lnf.g", c->d);
    AR__P1(tf->lnfb, "lnf.b", c->d);
    AR__P2(tf->Wout, "head.W", c->V, c->d);
    AR__P1(tf->bout, "head.b", c->V);
#undef AR__P1
#undef AR__P2
    if (!tf->tok || (c->pos == AR_POS_LEARNED && !tf->pos) || !tf->lnfg || !tf->lnfb || !tf->Wout || !tf->bout)
        return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", m->ps.err);
    return AR_OK;
}

static ar_status ar__tfm_fill(ar_model *m)
{
    ar_tfm *tf = m->tfm;
    int t, j, l, d = tf->cfg.d;
    ar_rng r;
    if (tf->cfg.pos == AR_POS_SINUSOIDAL) {
        if (!(tf->sinus = (float *)ar__malloc((size_t)tf->T * d * sizeof(float))))
            return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
        for (t = 0; t < tf->T; t++) /* sin on even, cos on odd features */
            for (j = 0; j < d; j++) {
                double f = pow(10000.0, -(double)(j - j % 2) / d);
                tf->sinus[(size_t)t * d + j] = (float)(j % 2 ? cos(t * f) : sin(t * f));
            }
    }
    ar_rng_seed(&r, m->cfg.seed);
    for (l = 0; l < m->ps.n; l++) { /* GPT-2 style: N(0, 0.02) weights, unit gains, zero biases */
        ar_tensor *p = m->ps.t[l];
        size_t nl = strlen(p->name);
        if (nl >= 2 && !strcmp(p->name + nl - 2, ".g")) ar_fill(p, 1);
        else if (p->nd == 2) ar_init_normal(p, &r, 0, 0.02f);
    }
    return AR_OK;
}

/* Logits [B,n,V]: position t predicts tokens[t] from the tokens before it
   in the order; its input is the token one step earlier, or the start
   token (id V) at step 0. tokens are checked by the caller. */
static ar_tensor *ar__tfm_logits(const ar_tfm *tf, ar_graph *g, const int *tokens, int B, int n)
{
    int d = tf->cfg.d, H = tf->cfg.heads, l, b, t, s2[2], *in;
    ar_tensor *x;
    if (!ar__check(g, "ar_tfm_logits", NULL, NULL, 0)) return NULL;
    if (!(in = (int *)ar_graph_alloc(g, (size_t)B * n * sizeof(int)))) {
        ar__fail(g, AR_ERR_NOMEM, "ar_tfm_logits: out of memory");
        return NULL;
    }
    for (b = 0; b < B; b++)
        for (t = 0; t < n; t++)
            in[(size_t)b * n + (tf->order ? tf->order[t] : t)] =
                t ? tokens[(size_t)b * n + (tf->order ? tf->order[t - 1] : t - 1)] : tf->cfg.V;
    s2[0] = B; s2[1] = n;
    x = ar_embedding(g, tf->tok, in, 2, s2);
    s2[0] = n; s2[1] = d;
    if (tf->cfg.pos != AR_POS_ROTARY)
        x = ar_add(g, x, tf->pos ? ar_slice(g, tf->pos, 0, 0, n) : ar_input(g, tf->sinus, 2, s2));
    for (l = 0; l < tf->cfg.layers; l++) {
        const ar_tfm_layer *L = &tf->L[l];
        ar_tensor *h = ar_linear(g, ar_layernorm(g, x, L->ln1g, L->ln1b, 1e-5f), L->Wqkv, L->bqkv); /* [B,n,3d] */
        h = ar_attention(g, h, H, 1.0f / sqrtf((float)(d / H)), tf->rank, tf->cfg.pos == AR_POS_ROTARY); /* [B,n,d] */
        x = ar_add(g, x, ar_linear(g, h, L->Wo, L->bo));
        h = ar_gelu(g, ar_linear(g, ar_layernorm(g, x, L->ln2g, L->ln2b, 1e-5f), L->W1, L->b1));
        x = ar_add(g, x, ar_linear(g, h, L->W2, L->b2));
    }
    return ar_linear(g, ar_layernorm(g, x, tf->lnfg, tf->lnfb, 1e-5f), tf->Wout, tf->bout);
}

static ar_tensor *ar__tfm_nll(const ar_tfm *tf, ar_graph *g, const int *tokens, int B, int n)
{
    return ar_sum(g, ar_cross_entropy(g, ar__tfm_logits(tf, g, tokens, B, n), tokens), 1);
}

/* Checks a public token call: model, graph, sizes and token values. */
static ar_status ar__tfm_tokens(ar_model *m, ar_graph *g, const char *who, const int *tokens, int B, int n)
{
    ar_status s = ar__model_ok(m, who, 1u << AR_TRANSFORMER);
    size_t i;
    if (s == AR_OK && !g) s = ar__merr(m, AR_ERR_ARG, "%s: graph is NULL", who);
    if (s == AR_OK && (!tokens || B < 1 || n < 1 || n > m->D || (m->tfm->order && n != m->D) ||
                       (size_t)B * n > 0x7fffffff))
        s = ar__merr(m, AR_ERR_ARG, "%s: need tokens, B >= 1 and 1 <= n <= %d (n = %d with a custom order; B %d, n %d)",
                     who, m->D, m->D, B, n);
    for (i = 0; s == AR_OK && i < (size_t)B * n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->tfm->cfg.V)
            s = ar__merr(m, AR_ERR_RANGE, "%s: tokens[%zu] = %d is outside [0,%d)", who, i, tokens[i], m->tfm->cfg.V);
    if (s != AR_OK) ar__fail_graph(g, m, s, who);
    return s;
}

ARDEF ar_tensor *ar_tfm_logits(ar_model *m, ar_graph *g, const int *tokens, int B, int n)
{
    ar_tensor *t;
    if (ar__tfm_tokens(m, g, "ar_tfm_logits", tokens, B, n) != AR_OK) return NULL;
    if (!(t = ar__tfm_logits(m->tfm, g, tokens, B, n))) ar__merr(m, g->status ? g->status : AR_ERR_ARG, "%s", g->err);
    return t;
}

ARDEF ar_tensor *ar_tfm_nll(ar_model *m, ar_graph *g, const int *tokens, int B, int n)
{
    ar_tensor *t;
    if (ar__tfm_tokens(m, g, "ar_tfm_nll", tokens, B, n) != AR_OK) return NULL;
    if (!(t = ar__tfm_nll(m->tfm, g, tokens, B, n))) ar__merr(m, g->status ? g->status : AR_ERR_ARG, "%s", g->err);
    return t;
}

/* Attention of the rows of one cache call. Row r is step st[r] of
   sequence seq[r]; the rows of a sequence are consecutive steps, in order.
   For each sequence and head, the rows' new keys and values (in qkv
   [rows,3d], q already rotated) go to their ring slots (step mod S), then
   each row's query reads the steps of its window, max(0, step-T+1)..step:
   keys K [dh,S] (transposed, so that scores are vector operations along
   the slots), values V [S,dh]. Up to 4 rows of a sequence go together
   over the union of their windows (at most two runs of slots), sharing
   every load of K and V; a row's weights outside its own window are 0.
   Each score and output is summed in one order whatever the grouping.
   Rotary scores depend on the distance alone, so the ring's order does
   not matter. first/cnt [B]: the rows of each sequence; sc [B*H, 4*S]
   holds the weights; out [rows,d]. Threads only where the call's
   products are ar__matvec's too: beside BLAS's spinning threads,
   OpenMP's would fight them for the cores. */
static void ar__step_attention(const float *qkv, int rows, const int *st, const int *first, const int *cnt, int B, int H,
                               int dh, float *K, float *V, int T, int S, float *sc, float *out, int par)
{
    long it;
    int d = H * dh;
    float scale = 1.0f / sqrtf((float)dh);
    (void)rows, (void)par; /* read by the OpenMP clause alone */
    AR__PARALLEL_FOR(par && rows <= AR__MV_ROWS && (long)rows * H * T * dh >= AR__PAR_MIN)
    for (it = 0; it < (long)B * H; it++) {
        int b = (int)(it / H), hd = (int)(it % H), r, r0, s, j, i;
        float *k = K + (size_t)it * S * dh, *v = V + (size_t)it * S * dh, *p = sc + (size_t)it * 4 * S;
        for (r = first[b]; r < first[b] + cnt[b]; r++) {
            const float *q = qkv + (size_t)r * 3 * d + hd * dh;
            int slot = st[r] % S;
            for (j = 0; j < dh; j++) k[(size_t)j * S + slot] = q[d + j];
            memcpy(v + (size_t)slot * dh, q + 2 * d, (size_t)dh * sizeof(float));
        }
        for (r0 = first[b]; r0 < first[b] + cnt[b]; r0 += 4) {
            int g = first[b] + cnt[b] - r0 < 4 ? first[b] + cnt[b] - r0 : 4;
            int lo = st[r0] - T + 1 > 0 ? st[r0] - T + 1 : 0, U = st[r0 + g - 1] - lo + 1, run, u = 0;
            for (run = 0; run < 2; run++) { /* slots lo % S.. to the ring's end, then from 0 */
                int s0 = run ? 0 : lo % S, n = run ? U - u : (U < S - lo % S ? U : S - lo % S);
                for (s = 0; s + 16 <= n; s += 16) {
                    ar__v16 acc[4];
                    memset(acc, 0, sizeof acc);
                    for (j = 0; j < dh; j++) {
                        ar__v16 kv, qv;
                        AR__VLOAD(kv, k + (size_t)j * S + s0 + s);
                        for (i = 0; i < g; i++) {
                            AR__VSPLAT(qv, scale * qkv[(size_t)(r0 + i) * 3 * d + hd * dh + j]);
                            AR__VMAC(acc[i], qv, kv);
                        }
                    }
                    for (i = 0; i < g; i++) memcpy(p + (size_t)i * S + u + s, &acc[i], sizeof acc[i]);
                }
                for (; s < n; s++)
                    for (i = 0; i < g; i++) {
                        float a = 0;
                        for (j = 0; j < dh; j++) a += scale * qkv[(size_t)(r0 + i) * 3 * d + hd * dh + j] * k[(size_t)j * S + s0 + s];
                        p[(size_t)i * S + u + s] = a;
                    }
                u += n;
            }
            for (i = 0; i < g; i++) { /* each row's own window; 0 elsewhere in the union */
                float *pi = p + (size_t)i * S;
                int a0 = st[r0 + i] - T + 1 - lo > 0 ? st[r0 + i] - T + 1 - lo : 0, a1 = st[r0 + i] - lo + 1;
                ar__softmax_into(pi + a0, (size_t)(a1 - a0), pi + a0);
                for (s = 0; s < a0; s++) pi[s] = 0;
                for (s = a1; s < U; s++) pi[s] = 0;
            }
            for (j = 0; j < dh; j += 16) { /* outputs: sum over the union of weight x value */
                int w = dh - j < 16 ? dh - j : 16;
                ar__v16 acc[4];
                memset(acc, 0, sizeof acc);
                for (s = 0; s < U; s++) {
                    const float *vs = v + (size_t)((lo + s) % S) * dh + j;
                    ar__v16 vv, pv;
                    if (w < 16) memset(&vv, 0, sizeof vv);
                    memcpy(&vv, vs, (size_t)w * sizeof(float));
                    for (i = 0; i < g; i++) {
                        AR__VSPLAT(pv, p[(size_t)i * S + s]);
                        AR__VMAC(acc[i], pv, vv);
                    }
                }
                for (i = 0; i < g; i++) memcpy(out + (size_t)(r0 + i) * d + hd * dh + j, &acc[i], (size_t)w * sizeof(float));
            }
        }
    }
}

/* Scratch of a cache call of R rows: x, h, att [R,d]; qkv [R,3d]; u
   [R,ffn]; rotations [R,d/heads]; weights [B*heads,4*slots]; then ints:
   step, first, count. */
static size_t ar__cache_work(const ar_tfm_cache *c, size_t R)
{
    return R * (7 * (size_t)c->d + c->ffn + c->d / c->heads) + (size_t)c->B * c->heads * 4 * c->slots + R + 2 * (size_t)c->B;
}

/* Makes room for R rows; the cache is unchanged when that fails. */
static int ar__cache_rows(ar_tfm_cache *c, int R)
{
    float *w;
    if (R <= c->rows) return 1;
    if (!(w = (float *)ar__realloc(c->work, ar__cache_work(c, (size_t)R) * sizeof(float)))) return 0;
    c->work = w;
    c->rows = R;
    return 1;
}

ARDEF ar_status ar_tfm_cache_init(ar_tfm_cache *c, ar_model *m, int B)
{
    ar_status s = ar__model_ok(m, "ar_tfm_cache_init", 1u << AR_TRANSFORMER);
    const ar_tfm *tf;
    size_t kv;
    if (c) memset(c, 0, sizeof *c);
    if (s != AR_OK) return s;
    if (!c) return ar__merr(m, AR_ERR_ARG, "ar_tfm_cache_init: cache is NULL");
    if (B < 1 || B > (1 << 20)) return ar__merr(m, AR_ERR_ARG, "ar_tfm_cache_init: B = %d, need 1..2^20", B);
    tf = m->tfm;
    c->B = B;
    c->layers = tf->cfg.layers; c->T = m->D; c->d = tf->cfg.d; c->heads = tf->cfg.heads; c->ffn = tf->cfg.ffn;
    c->V = tf->cfg.V;
    /* a model that decodes past T keeps AR_TFM_MAX_STEP - 1 more slots: room
       for a call's rows past the window and for undoing them */
    c->slots = m->D + (tf->cfg.pos == AR_POS_ROTARY && !tf->order ? AR_TFM_MAX_STEP - 1 : 0);
    if (!ar__mulsz((size_t)c->layers * B, (size_t)c->slots * c->d, &kv) || kv > ((size_t)1 << 40)) {
        memset(c, 0, sizeof *c);
        return ar__merr(m, AR_ERR_RANGE, "ar_tfm_cache_init: a cache of %d sequences is too large", B);
    }
    c->k = (float *)ar__malloc(kv * sizeof(float));
    c->v = (float *)ar__malloc(kv * sizeof(float));
    if (!c->k || !c->v || !ar__cache_rows(c, B)) {
        ar_tfm_cache_free(c);
        return ar__merr(m, AR_ERR_NOMEM, "ar_tfm_cache_init: out of memory for %d sequences", B);
    }
    c->model = m;
    return AR_OK;
}

ARDEF void ar_tfm_cache_free(ar_tfm_cache *c)
{
    if (!c) return;
    AR_FREE(c->k);
    AR_FREE(c->v);
    AR_FREE(c->work);
    memset(c, 0, sizeof *c);
}

/* The forward of R rows through the cache: row r is step st[r] of sequence
   seq[r] (rows of a sequence together, consecutive steps in order), fed
   token tok[r] (the start token at step 0); with seq NULL, the rows are n
   steps from t0 of each sequence in turn. Logits [R,V]. The callers
   checked everything, made room for R rows, and keep each row's window in
   the ring. par = 0 keeps OpenMP's threads out of it, for callers that
   alternate it with products BLAS threads (see ar__step_attention). */
static void ar__tfm_rows(const ar_tfm *tf, ar_tfm_cache *c, int R, int n, int t0, const int *seq, const int *st,
                         const int *tok, float *logits, int par)
{
    int B = c->B, d = c->d, H = c->heads, dh = d / H, T = c->T, S = c->slots, ffn = c->ffn, V = c->V, l, r, b, j;
    size_t i, kv = (size_t)B * H * S * dh;
    float *x = c->work, *h = x + (size_t)R * d, *att = h + (size_t)R * d, *qkv = att + (size_t)R * d;
    float *u = qkv + (size_t)R * 3 * d, *cs = u + (size_t)R * ffn, *sc = cs + (size_t)R * dh;
    int *step = (int *)(void *)(sc + (size_t)B * H * 4 * S), *first = step + R, *cnt = first + B;
    for (b = 0; b < B; b++) first[b] = cnt[b] = 0;
    for (r = R - 1; r >= 0; r--) {
        b = seq ? seq[r] : r / n;
        step[r] = seq ? st[r] : t0 + r % n;
        first[b] = r;
        cnt[b]++;
    }
    for (r = 0; r < R; r++) {
        int pos = tf->order ? tf->order[step[r]] : step[r]; /* the cache holds exactly what pos may see */
        const float *e = tf->tok->x + (size_t)(step[r] ? tok[r] : V) * d;
        for (j = 0; j < d; j++)
            x[(size_t)r * d + j] = e[j] + (tf->cfg.pos == AR_POS_ROTARY ? 0.0f : (tf->pos ? tf->pos->x : tf->sinus)[(size_t)pos * d + j]);
        if (tf->cfg.pos == AR_POS_ROTARY) ar__rope_angles(pos, dh, cs + (size_t)r * dh);
    }
    for (l = 0; l < tf->cfg.layers; l++) {
        const ar_tfm_layer *L = &tf->L[l];
        for (r = 0; r < R; r++) ar__ln_row(x + (size_t)r * d, L->ln1g->x, L->ln1b->x, h + (size_t)r * d, d, 1e-5f, NULL);
        ar__rows_linear(h, R, L->Wqkv, L->bqkv, qkv, par);
        if (tf->cfg.pos == AR_POS_ROTARY) /* q and k rotated for the position, as ar_attention does */
            for (i = 0; i < (size_t)R * H; i++) {
                float *q = qkv + (i / H) * 3 * d + (i % H) * dh;
                ar__rope_apply(q, dh, cs + (i / H) * dh, 0);
                ar__rope_apply(q + d, dh, cs + (i / H) * dh, 0);
            }
        ar__step_attention(qkv, R, step, first, cnt, B, H, dh, c->k + l * kv, c->v + l * kv, T, S, sc, att, par);
        ar__rows_linear(att, R, L->Wo, L->bo, h, par);
        for (i = 0; i < (size_t)R * d; i++) x[i] += h[i];
        for (r = 0; r < R; r++) ar__ln_row(x + (size_t)r * d, L->ln2g->x, L->ln2b->x, h + (size_t)r * d, d, 1e-5f, NULL);
        ar__rows_linear(h, R, L->W1, L->b1, u, par);
        for (i = 0; i < (size_t)R * ffn; i++) u[i] = ar__gelu(u[i]);
        ar__rows_linear(u, R, L->W2, L->b2, h, par);
        for (i = 0; i < (size_t)R * d; i++) x[i] += h[i];
    }
    for (r = 0; r < R; r++) ar__ln_row(x + (size_t)r * d, tf->lnfg->x, tf->lnfb->x, h + (size_t)r * d, d, 1e-5f, NULL);
    ar__rows_linear(h, R, tf->Wout, tf->bout, logits, par);
}

static ar_status ar__tfm_step(ar_model *m, ar_tfm_cache *c, int n, const int *tokens, float *logits, const char *who)
{
    const ar_tfm *tf;
    int T, t, top, oldest, ring, i;
    ar_status s = ar__model_ok(m, who, 1u << AR_TRANSFORMER);
    if (s != AR_OK) return s;
    tf = m->tfm;
    T = tf->T;
    if (!c || !c->k || !logits) return ar__merr(m, AR_ERR_ARG, "%s: need a cache (ar_tfm_cache_init) and logits", who);
    if (c->model != m || c->layers != tf->cfg.layers || c->T != T || c->d != tf->cfg.d || c->heads != tf->cfg.heads ||
        c->ffn != tf->cfg.ffn || c->V != tf->cfg.V)
        return ar__merr(m, AR_ERR_ARG, "%s: the cache was made for another model", who);
    if (c->B < 1 || c->rows < c->B) return ar__merr(m, AR_ERR_ARG, "%s: cache with B = %d", who, c->B);
    t = c->len;
    ring = c->slots > T;
    /* the ring holds steps max(0, top - slots)..held-1; step t needs its
       window's steps t-T+1..t-1 */
    top = t == 0 ? 0 : c->top;
    oldest = top > c->slots ? top - c->slots : 0;
    if (t < 0 || t > c->held || (t > 0 && (t - T + 1 > 0 ? t - T + 1 : 0) < oldest))
        return ar__merr(m, AR_ERR_ARG, "%s: len = %d; this cache can take step %s%d..%d next", who, t,
                        oldest > 0 ? "0 or " : "", oldest > 0 ? oldest + T - 1 : 0, c->held);
    if (!ring && t >= T)
        return ar__merr(m, AR_ERR_RANGE, "%s: the cache is full (%d steps); only rotary positions in the "
                        "natural order decode past T", who, T);
    if (n < 1 || (!ring && n > T - t) || (ring && n > AR_TFM_MAX_STEP && n > T - t))
        return ar__merr(m, AR_ERR_ARG, "%s: n = %d tokens at step %d; need 1..%d", who, n, t,
                        ring && T - t < AR_TFM_MAX_STEP ? AR_TFM_MAX_STEP : T - t);
    if (t > INT_MAX - n) return ar__merr(m, AR_ERR_RANGE, "%s: %d steps, the most a cache counts", who, INT_MAX);
    if (!tokens && (n > 1 || t > 0))
        return ar__merr(m, AR_ERR_ARG, "%s: tokens may be NULL only for one step at step 0", who);
    for (i = 0; tokens && i < c->B * n; i++)
        if ((t > 0 || i % n) && (tokens[i] < 0 || tokens[i] >= c->V))
            return ar__merr(m, AR_ERR_RANGE, "%s: tokens[%d] = %d is outside [0,%d)", who, i, tokens[i], c->V);
    if ((long long)c->B * n > (1 << 24))
        return ar__merr(m, AR_ERR_RANGE, "%s: %d x %d rows, more than 2^24", who, c->B, n);
    if (!ar__cache_rows(c, c->B * n))
        return ar__merr(m, AR_ERR_NOMEM, "%s: out of memory for %d x %d rows", who, c->B, n);
    ar__tfm_rows(tf, c, c->B * n, n, t, NULL, NULL, tokens, logits, 1);
    c->len = c->held = t + n; /* later steps, if any were held, are gone */
    c->top = top > t + n ? top : t + n;
    return AR_OK;
}

ARDEF ar_status ar_tfm_step_n(ar_model *m, ar_tfm_cache *c, int n, const int *tokens, float *logits)
{
    return ar__tfm_step(m, c, n, tokens, logits, "ar_tfm_step_n");
}

ARDEF ar_status ar_tfm_step(ar_model *m, ar_tfm_cache *c, const int *tokens, float *logits)
{
    return ar__tfm_step(m, c, 1, tokens, logits, "ar_tfm_step");
}

/* Step by step in the order, through the KV cache or (naive) a whole
   forward pass per step; both feed each step's value to the next. */
static ar_status ar__tfm_sample(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *r, float *x)
{
    const ar_tfm *tf = m->tfm;
    int T = tf->T, V = tf->cfg.V, t, n;
    float *logits = (float *)ar_graph_alloc(g, ((size_t)N * V + 3 * (size_t)V) * sizeof(float)), *scratch;
    int *tok = (int *)ar_graph_alloc(g, (size_t)N * sizeof(int));
    int *all = o->naive ? (int *)ar_graph_alloc(g, (size_t)N * T * sizeof(int)) : NULL;
    ar_tfm_cache c;
    ar_status s = AR_OK;
    memset(&c, 0, sizeof c);
    if (!logits || !tok || (o->naive && !all)) return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    scratch = logits + (size_t)N * V;
    if (all) memset(all, 0, (size_t)N * T * sizeof(int));
    else if ((s = ar_tfm_cache_init(&c, m, N)) != AR_OK) return s;
    for (t = 0; t < T && s == AR_OK; t++) {
        int p = tf->order ? tf->order[t] : t;
        if (!all) {
            s = ar_tfm_step(m, &c, t ? tok : NULL, logits);
        } else {
            ar__mark mark = ar__graph_mark(g);
            ar_tensor *lg = ar__tfm_logits(tf, g, all, N, T);
            if (!lg) s = ar__merr(m, g->status, "%s", g->err);
            for (n = 0; lg && n < N; n++)
                memcpy(logits + (size_t)n * V, lg->x + ((size_t)n * T + p) * V, (size_t)V * sizeof(float));
            ar__graph_rewind(g, &mark);
        }
        for (n = 0; n < N && s == AR_OK; n++) {
            size_t i = (size_t)n * T + p;
            int obs = o->known && o->known[i];
            int v = ar__draw(logits + (size_t)n * V, V, o, r, scratch, o->probs ? o->probs + i * (V > 2 ? V : 1) : NULL, !obs);
            if (v < 0) s = ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN logits at position %d", p);
            tok[n] = obs ? (int)o->given[i] : v;
            x[i] = (float)tok[n];
            if (all) all[i] = tok[n];
        }
    }
    ar_tfm_cache_free(&c);
    return s;
}

/* ---- speculative sampling ---------------------------------------------------- */

/* A draft model stepping through the sequences at its own pace: its step s
   of sequence b is fed the value of step s-1 and gives the logits [V] of
   step s (binary models: the pair {0, z}). A sequence may go back by at
   most AR_TFM_MAX_STEP steps, to a step whose inputs all stand. */
typedef struct {
    ar_model *m;
    const int *order;  /* MADE, FVSBN: the current mask set's */
    ar_tfm_cache c;    /* Transformer */
    float *a;          /* NADE: [N][AR_TFM_MAX_STEP + 1][H] hidden pre-activations by step */
    float *x;          /* MADE, FVSBN: [N][D] the values so far */
} ar__draft;

static void ar__draft_free(ar__draft *dr)
{
    ar_tfm_cache_free(&dr->c);
    AR_FREE(dr->a);
    AR_FREE(dr->x);
}

/* The order a model generates in: NULL for the natural one. */
static const int *ar__gen_order(const ar_model *m)
{
    return m->tfm ? m->tfm->order : m->nade ? m->nade->order : m->made ? m->made->orders + (size_t)m->made->cur * m->D : NULL;
}

static ar_status ar__draft_init(ar__draft *dr, ar_model *dm, int N)
{
    memset(dr, 0, sizeof *dr);
    dr->m = dm;
    if (dm->tfm) return ar_tfm_cache_init(&dr->c, dm, N);
    if (dm->nade) {
        dr->a = (float *)ar__malloc((size_t)N * (AR_TFM_MAX_STEP + 1) * dm->nade->cfg.H * sizeof(float));
    } else {
        dr->order = ar__gen_order(dm);
        dr->x = (float *)ar__malloc((size_t)N * dm->D * sizeof(float));
        if (dr->x) memset(dr->x, 0, (size_t)N * dm->D * sizeof(float));
    }
    return dr->a || dr->x ? AR_OK : ar__merr(dm, AR_ERR_NOMEM, "ar_model_sample: out of memory for the draft");
}

/* R rows, at most one per sequence: sequence seq[r] takes step st[r], fed
   tok[r]; logits out [R,V]. */
static ar_status ar__draft_step(ar__draft *dr, int R, const int *seq, const int *st, const int *tok, int V, float *out,
                               int par)
{
    ar_model *dm = dr->m;
    int r, D = dm->D;
    if (dm->tfm) {
        if (!ar__cache_rows(&dr->c, R)) return ar__merr(dm, AR_ERR_NOMEM, "ar_model_sample: out of memory for the draft");
        ar__tfm_rows(dm->tfm, &dr->c, R, 0, 0, seq, st, tok, out, par);
        return AR_OK;
    }
    if (dm->nade) { /* the recursion, from the pre-activations of the step before */
        const ar_nade *nd = dm->nade;
        int H = nd->cfg.H, W = AR_TFM_MAX_STEP + 1, j;
        for (r = 0; r < R; r++) {
            float *a = dr->a + ((size_t)seq[r] * W + st[r] % W) * H;
            const float *v = nd->V->x + (size_t)nd->order[st[r]] * H;
            double z = nd->b->x[nd->order[st[r]]];
            if (st[r] == 0) memcpy(a, nd->c->x, (size_t)H * sizeof(float));
            else {
                const float *prev = dr->a + ((size_t)seq[r] * W + (st[r] - 1) % W) * H;
                const float *w = nd->W->x + (size_t)nd->order[st[r] - 1] * H;
                for (j = 0; j < H; j++) a[j] = prev[j] + (tok[r] ? w[j] : 0.0f);
            }
            for (j = 0; j < H; j++) z += v[j] * ar__sigmoid(a[j]);
            out[(size_t)r * V] = 0;
            out[(size_t)r * V + 1] = (float)z;
        }
        return AR_OK;
    } else {
        ar_graph *g = ar__work(dm);
        const int *ord = dr->order;
        float *X;
        ar_tensor *lg;
        int shape[2];
        if (!g || !(X = (float *)ar_graph_alloc(g, (size_t)R * D * sizeof(float))))
            return ar__merr(dm, AR_ERR_NOMEM, "ar_model_sample: out of memory for the draft");
        for (r = 0; r < R; r++) {
            float *xb = dr->x + (size_t)seq[r] * D;
            if (st[r] > 0) xb[ord[st[r] - 1]] = (float)tok[r];
            memcpy(X + (size_t)r * D, xb, (size_t)D * sizeof(float));
        }
        shape[0] = R; shape[1] = D;
        lg = ar__made_logits(dm->made, g, ar_input(g, X, 2, shape));
        if (!lg) return ar__merr(dm, g->status, "ar_model_sample: the draft: %s", g->err);
        for (r = 0; r < R; r++) {
            out[(size_t)r * V] = 0;
            out[(size_t)r * V + 1] = lg->x[(size_t)r * D + ord[st[r]]];
        }
        ar_graph_reset(g);
        return AR_OK;
    }
}

/* Why draft cannot propose for the Transformer m under o, or NULL. */
static const char *ar__draft_bad(const ar_model *m, const ar_sample_opts *o)
{
    const ar_model *dm = o->draft;
    const int *a, *b;
    int t;
    if (!m->tfm) return "only a Transformer verifies a draft";
    if (o->naive) return "naive and draft do not go together";
    if (o->draft_k < 1 || o->draft_k >= AR_TFM_MAX_STEP) return "draft_k must be in 1..AR_TFM_MAX_STEP-1";
    if (!dm->ps.x || (!dm->tfm && !dm->nade && !dm->made)) return "the draft is not an initialized Transformer, NADE, MADE or FVSBN";
    if (dm->levels != m->levels || dm->D != m->D) return "the draft's values (levels, D) are not the model's";
    a = ar__gen_order(m);
    b = ar__gen_order(dm);
    for (t = 0; t < m->D; t++)
        if ((a ? a[t] : t) != (b ? b[t] : t)) return "the draft's order is not the model's";
    return NULL;
}

/* Speculative sampling (Leviathan et al. 2023, Chen et al. 2023). In a
   round, sequence b, whose steps before t[b] stand, has the draft propose
   the values of steps t..t+kb-1, each drawn from the draft's distribution
   q under the options; then the model scores steps t..t+kb in one pass,
   giving its distributions p under the same options. The proposal y of
   step t+i stands with probability min(1, p(y)/q(y)); the first one that
   does not is replaced by a draw from max(0, p - q), normalized, and when
   all kb stand, step t+kb draws from p. Either way each value follows p
   given the values before it, as ar__tfm_sample draws it, whatever the
   draft: only the number of values per pass depends on it. Known values
   stand without a test. */
static ar_status ar__tfm_spec_sample(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *r, float *x)
{
    const ar_tfm *tf = m->tfm;
    int T = tf->T, V = tf->cfg.V, K = o->draft_k, P = V > 2 ? V : 1, greedy = o->temperature == 0 || o->top_k == 1;
    int b, i, R, left = N;
    size_t rows = (size_t)N * (K + 1);
    int par = rows <= AR__MV_ROWS; /* OpenMP's threads only where BLAS's stay idle (see ar__step_attention) */
    int64_t proposed = 0, kept = 0;
    int *xs = (int *)ar_graph_alloc(g, ((size_t)N * T + 3 * (size_t)N + 3 * rows) * sizeof(int));
    float *lg = (float *)ar_graph_alloc(g, (rows * V + (size_t)N * K * V + 7 * (size_t)V) * sizeof(float));
    int *t, *dp, *kb, *seq, *st, *tok;
    float *q, *pd, *qd, *res;
    ar_tfm_cache c;
    ar__draft dr;
    ar_status s = AR_OK;
    memset(&c, 0, sizeof c);
    memset(&dr, 0, sizeof dr);
    if (!xs || !lg) return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    t = xs + (size_t)N * T; dp = t + N; kb = dp + N; seq = kb + N; st = seq + rows; tok = st + rows;
    q = lg + rows * V; pd = q + (size_t)N * K * V; qd = pd + 3 * (size_t)V; res = qd + 3 * (size_t)V;
    for (b = 0; b < N; b++) t[b] = dp[b] = 0;
    if ((s = ar_tfm_cache_init(&c, m, N)) != AR_OK) goto out;
    if ((s = ar__draft_init(&dr, o->draft, N)) != AR_OK) { s = ar__merr(m, s, "ar_model_sample: %s", o->draft->err); goto out; }
    if (!ar__cache_rows(&c, (int)rows)) { s = ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory"); goto out; } /* rows < 2^24 */
    while (left > 0) {
        for (b = 0; b < N; b++) kb[b] = t[b] < T ? (T - 1 - t[b] < K ? T - 1 - t[b] : K) : -1;
        for (;;) { /* the draft catches up to t[b], then proposes kb[b] values */
            for (R = 0, b = 0; b < N; b++)
                if (kb[b] >= 0 && dp[b] < t[b] + kb[b]) {
                    seq[R] = b; st[R] = dp[b]; tok[R] = dp[b] ? xs[(size_t)b * T + dp[b] - 1] : 0; R++;
                }
            if (!R) break;
            if ((s = ar__draft_step(&dr, R, seq, st, tok, V, lg, par)) != AR_OK) { s = ar__merr(m, s, "%s", o->draft->err); goto out; }
            for (i = 0; i < R; i++) {
                int u = st[i], place = tf->order ? tf->order[u] : u, j;
                size_t at = (size_t)seq[i] * T + place;
                float *qi;
                dp[seq[i]]++;
                if (u < t[seq[i]]) continue;
                qi = q + ((size_t)seq[i] * K + (u - t[seq[i]])) * V;
                if (o->known && o->known[at]) { xs[(size_t)seq[i] * T + u] = (int)o->given[at]; continue; }
                if ((j = ar__draw(lg + (size_t)i * V, V, o, r, qd, NULL, 1)) < 0) {
                    s = ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN logits from the draft at position %d", place);
                    goto out;
                }
                memcpy(qi, qd, (size_t)V * sizeof(float));
                xs[(size_t)seq[i] * T + u] = j;
            }
        }
        for (R = 0, b = 0; b < N; b++) /* the model scores every proposal, and one step more, in one pass */
            for (i = 0; i <= kb[b]; i++, R++) {
                seq[R] = b; st[R] = t[b] + i; tok[R] = st[R] ? xs[(size_t)b * T + st[R] - 1] : 0;
            }
        ar__tfm_rows(tf, &c, R, 0, 0, seq, st, tok, lg, par);
        for (R = 0, b = 0; b < N; R += kb[b] + 1, b++) {
            int *xb = xs + (size_t)b * T, u = 0;
            if (kb[b] < 0) continue;
            for (i = 0; i <= kb[b]; i++) {
                int place, j, y, obs, last = i == kb[b]; /* last: every proposal stood, one more value from p */
                size_t at, v;
                const float *qi = q + ((size_t)b * K + i) * V;
                double z = 0;
                u = t[b] + i; place = tf->order ? tf->order[u] : u; at = (size_t)b * T + place; y = xb[u];
                obs = o->known && o->known[at];
                if ((j = ar__draw(lg + (size_t)(R + i) * V, V, o, r, pd, o->probs ? o->probs + at * P : NULL, last && !obs)) < 0) {
                    s = ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN logits at position %d", place);
                    goto out;
                }
                if (obs || last) {
                    xb[u] = obs ? (int)o->given[at] : j;
                    if (obs && !last) continue;
                    break;
                }
                proposed++;
                if ((double)(ar_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0) * qi[y] < pd[y]) {
                    kept++;
                    continue;
                }
                for (v = 0; v < (size_t)V; v++) z += res[v] = pd[v] > qi[v] ? pd[v] - qi[v] : 0.0f;
                xb[u] = z > 0 ? ar_rng_categorical(r, res, V) : greedy ? j : ar_rng_categorical(r, pd, V); /* z == 0: p == q */
                break;
            }
            for (i = t[b]; i <= u; i++) x[(size_t)b * T + (tf->order ? tf->order[i] : i)] = (float)xb[i];
            t[b] = u + 1;
            if (dp[b] > t[b]) dp[b] = t[b]; /* the draft's later steps read a refused value */
            if (t[b] == T) left--;
        }
    }
    if (o->draft_counts) { o->draft_counts[0] = proposed; o->draft_counts[1] = kept; }
out:
    ar__draft_free(&dr);
    ar_tfm_cache_free(&c);
    return s;
}

/* ==== SECTION: models — convolutional (PixelCNN, Gated, WaveNet) ========== */

/* Where each convolution reads, one description for the graph and the
   sampler. Maps are [H,W,C] images, or [1,H*W,C] for WaveNet. */
enum { AR__CNN_MAIN, AR__CNN_VERT, AR__CNN_LINK, AR__CNN_1X1 };

static ar__conv ar__cnn_conv(const ar_cnn *cn, int l, int which, const ar_tensor *Wt)
{
    const ar_cnn_cfg *c = &cn->cfg;
    ar__conv q;
    int k = l ? c->kernel : c->first_kernel, wave = cn->kind == AR_WAVENET;
    q.H = wave ? 1 : cn->H;
    q.W = wave ? cn->H * cn->W : cn->W;
    q.Ci = Wt->shape[3];
    q.kh = Wt->shape[1];
    q.kw = Wt->shape[2];
    q.top = q.left = q.taps = 0;
    q.dil = 1;
    if (which == AR__CNN_VERT) { /* rows y - k/2 .. y, columns x - k/2 .. x + k/2 */
        q.top = q.left = k / 2;
    } else if (which == AR__CNN_LINK) { /* the vertical stack one row up */
        q.top = 1;
    } else if (which == AR__CNN_MAIN && cn->kind == AR_PIXELCNN) { /* mask A first, then B */
        q.top = q.left = k / 2;
        q.taps = (k / 2) * k + k / 2 + (l > 0);
    } else if (which == AR__CNN_MAIN && cn->kind == AR_GATED) { /* x - k/2 .. x (layer 0: .. x - 1) */
        q.left = k / 2;
        q.taps = l ? k / 2 + 1 : k / 2;
    } else if (which == AR__CNN_MAIN) { /* WaveNet: t-2, t-1 first, then t-d, t */
        q.dil = l ? 1 << ((l - 1) % c->dilations) : 1;
        q.left = l ? q.dil : 2;
    }
    if (!q.taps) q.taps = q.kh * q.kw;
    return q;
}

static ar_tensor *ar__cnn_apply(ar_graph *g, const ar_cnn *cn, int l, int which, ar_tensor *x, ar_tensor *Wt,
                                ar_tensor *b)
{
    ar__conv q = ar__cnn_conv(cn, l, which, Wt);
    return ar_conv2d(g, x, Wt, b, q.top, q.left, q.dil, q.taps);
}

static int ar__cnn_cin(const ar_cnn_cfg *c) { return 1 + 2 * (c->coords != 0); }
static int ar__cnn_outs(const ar_cnn_cfg *c) { return c->levels > 1 ? c->levels : 1; }

/* The network's input at pixel p: its value scaled to [0,1], then (row/H, col/W). */
static void ar__cnn_input(const ar_cnn *cn, float value, int p, float *v)
{
    const ar_cnn_cfg *c = &cn->cfg;
    v[0] = c->levels > 1 ? value / (float)(c->levels - 1) : value;
    if (c->coords) {
        v[1] = (float)(p / cn->W) / (float)cn->H;
        v[2] = (float)(p % cn->W) / (float)cn->W;
    }
}

ARDEF int ar_cnn_receptive_field(const ar_model *m)
{
    const ar_cnn *cn = m && m->cnn && m->ps.x ? m->cnn : NULL;
    int l, rf;
    if (!cn) return 0;
    if (cn->kind != AR_WAVENET) /* the gated link reads the vertical stack one row up */
        return cn->cfg.first_kernel / 2 + cn->cfg.layers * (cn->cfg.kernel / 2) + (cn->kind == AR_GATED);
    for (rf = 2, l = 1; l <= cn->cfg.layers; l++) rf += 1 << ((l - 1) % cn->cfg.dilations);
    return rf; /* t-2, t-1 first, then each block d further back */
}

/* Parameter "l<l>.<what>" (or just what for l < 0), [a,b,c,d] or [a] when b == 0. */
static ar_tensor *ar__cnn_param(ar_params *ps, int l, const char *what, int a, int b, int c, int d)
{
    char name[40];
    int s[4];
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
    if (l >= 0) snprintf(name, sizeof name, "l%d.%s", l, what);
    else snprintf(name, sizeof name, "%s", what);
    return ar_params_add(ps, name, b ? 4 : 1, s);
}


static ar_status ar__cnn_declare(ar_model *m)
{
    const ar_cnn_cfg *cfg = &m->cfg.cnn;
    ar_cnn *cn;
    ar_params *ps = &m->ps;
    int l, F, Cin, ok, kind = m->kind;
    if (m->rows > 4096 || m->cols > 4096 || cfg->levels < 1 || cfg->levels > 65536 || cfg->channels < 1 ||
        cfg->channels > 4096 || cfg->layers < 0 || cfg->layers >= AR_CNN_MAX_LAYERS || (cfg->coords != 0 && cfg->coords != 1) ||
        (kind != AR_WAVENET && (cfg->kernel < 1 || cfg->kernel % 2 == 0 || cfg->kernel > 31 || cfg->first_kernel < 3 ||
                                cfg->first_kernel % 2 == 0 || cfg->first_kernel > 31)) ||
        (kind == AR_WAVENET && (cfg->dilations < 1 || cfg->dilations > 20)))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: a %s needs rows, cols <= 4096, 1 <= levels <= 65536, "
                        "1 <= channels <= 4096, 0 <= layers < %d, coords 0 or 1, odd kernels (first >= 3, both <= 31), "
                        "WaveNet 1 <= dilations <= 20 (rows %d, cols %d, levels %d, channels %d, layers %d, coords %d, "
                        "kernels %d and %d, dilations %d)", ar__kind_names[kind], AR_CNN_MAX_LAYERS, m->rows, m->cols,
                        cfg->levels, cfg->channels, cfg->layers, cfg->coords, cfg->first_kernel, cfg->kernel,
                        cfg->dilations);
    if (kind == AR_WAVENET) m->cfg.cnn.kernel = m->cfg.cnn.first_kernel = 0; /* fields its kind ignores: */
    else m->cfg.cnn.dilations = 0;                                            /* saved as 0, loaded back */
    if (!(cn = (ar_cnn *)ar__malloc(sizeof *cn))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory");
    memset(cn, 0, sizeof *cn);
    m->cnn = cn;
    cn->cfg = *cfg;
    cn->kind = kind;
    cn->H = m->rows;
    cn->W = m->cols;
    m->levels = cfg->levels > 1 ? cfg->levels : 2;
    F = cfg->channels;
    Cin = ar__cnn_cin(cfg);
    for (l = 0; l <= cfg->layers; l++) {
        ar_cnn_layer *L = &cn->L[l];
        int k = l ? cfg->kernel : cfg->first_kernel, Ci = l ? F : Cin, F2 = 2 * F;
        if (kind == AR_PIXELCNN) {
            L->W = ar__cnn_param(ps, l, "W", F, k, k, Ci);
            L->b = ar__cnn_param(ps, l, "b", F, 0, 0, 0);
        } else if (kind == AR_GATED) {
            L->Wv = ar__cnn_param(ps, l, "v.W", F2, k / 2 + 1, k, Ci);
            L->bv = ar__cnn_param(ps, l, "v.b", F2, 0, 0, 0);
            L->W = ar__cnn_param(ps, l, "h.W", F2, 1, k / 2 + 1, Ci);
            L->b = ar__cnn_param(ps, l, "h.b", F2, 0, 0, 0);
            L->Wl = ar__cnn_param(ps, l, "link.W", F2, 1, 1, F2);
            L->bl = ar__cnn_param(ps, l, "link.b", F2, 0, 0, 0);
        } else {
            L->W = ar__cnn_param(ps, l, "W", l ? F2 : F, 1, 2, Ci);
            L->b = ar__cnn_param(ps, l, "b", l ? F2 : F, 0, 0, 0);
        }
        if (l > 0 && kind != AR_PIXELCNN) {
            L->Wr = ar__cnn_param(ps, l, "res.W", F, 1, 1, F);
            L->br = ar__cnn_param(ps, l, "res.b", F, 0, 0, 0);
        }
        if (l > 0 && kind == AR_WAVENET) {
            L->Ws = ar__cnn_param(ps, l, "skip.W", F, 1, 1, F);
            L->bs = ar__cnn_param(ps, l, "skip.b", F, 0, 0, 0);
        }
    }
    cn->W1 = ar__cnn_param(ps, -1, "head1.W", F, 1, 1, F);
    cn->b1 = ar__cnn_param(ps, -1, "head1.b", F, 0, 0, 0);
    cn->W2 = ar__cnn_param(ps, -1, "head2.W", ar__cnn_outs(cfg), 1, 1, F);
    cn->b2 = ar__cnn_param(ps, -1, "head2.b", ar__cnn_outs(cfg), 0, 0, 0);
    for (ok = cn->W1 && cn->b1 && cn->W2 && cn->b2, l = 0; l <= cfg->layers && ok; l++) {
        const ar_cnn_layer *L = &cn->L[l];
        ok = L->W && L->b && (kind != AR_GATED || (L->Wv && L->bv && L->Wl && L->bl)) &&
             (!l || kind == AR_PIXELCNN || (L->Wr && L->br)) && (!l || kind != AR_WAVENET || (L->Ws && L->bs));
    }
    return ok ? AR_OK : ar__merr(m, AR_ERR_NOMEM, "ar_model_init: %s", ps->err);
}

/* U(+-sqrt(gain/fan_in)) over the used taps, zero biases. The gated
   model's vertical stack has no residual path: with gain 1 a signal
   shrinks ~12x in variance per layer and trains far slower; He's gain 6
   fits it. The residual models keep gain 1. */
static void ar__cnn_fill(ar_model *m)
{
    ar_cnn *cn = m->cnn;
    ar_rng r;
    int i, l;
    float gain = cn->kind == AR_GATED ? 6.0f : 1.0f;
    ar_rng_seed(&r, m->cfg.seed);
    for (i = 0; i < m->ps.n; i++) {
        ar_tensor *p = m->ps.t[i];
        int fan = p->shape[1] * p->shape[2] * p->shape[3];
        if (p->nd != 4) continue;
        for (l = 0; l <= cn->cfg.layers; l++)
            if (p == cn->L[l].W) fan = ar__cnn_conv(cn, l, AR__CNN_MAIN, p).taps * p->shape[3];
        ar_init_uniform(p, &r, -sqrtf(gain / (float)fan), sqrtf(gain / (float)fan));
    }
}

/* Logits [N,H,W,P] of images x [N,H*W] (checked by the caller). */
static ar_tensor *ar__cnn_logits(const ar_cnn *cn, ar_graph *g, const float *x, int N)
{
    const ar_cnn_cfg *c = &cn->cfg;
    int l, HW = cn->H * cn->W, s4[4];
    size_t i;
    ar_tensor *in, *h, *v = NULL, *vp, *z, *skip = NULL;
    if (!ar__check(g, "ar_cnn_logits", NULL, NULL, 0)) return NULL;
    s4[0] = N;
    s4[1] = cn->kind == AR_WAVENET ? 1 : cn->H;
    s4[2] = cn->kind == AR_WAVENET ? HW : cn->W;
    s4[3] = ar__cnn_cin(c);
    if (!(in = ar_zeros(g, 4, s4))) return NULL;
    for (i = 0; i < (size_t)N * HW; i++) ar__cnn_input(cn, x[i], (int)(i % HW), in->x + i * s4[3]);
    if (cn->kind == AR_PIXELCNN) {
        h = ar_relu(g, ar__cnn_apply(g, cn, 0, AR__CNN_MAIN, in, cn->L[0].W, cn->L[0].b));
        for (l = 1; l <= c->layers; l++)
            h = ar_add(g, h, ar_relu(g, ar__cnn_apply(g, cn, l, AR__CNN_MAIN, h, cn->L[l].W, cn->L[l].b)));
    } else if (cn->kind == AR_GATED) {
        for (h = v = in, l = 0; l <= c->layers; l++) {
            const ar_cnn_layer *L = &cn->L[l];
            vp = ar__cnn_apply(g, cn, l, AR__CNN_VERT, v, L->Wv, L->bv);
            z = ar_gate(g, ar_add(g, ar__cnn_apply(g, cn, l, AR__CNN_MAIN, h, L->W, L->b),
                                  ar__cnn_apply(g, cn, l, AR__CNN_LINK, vp, L->Wl, L->bl)));
            h = l ? ar_add(g, h, ar__cnn_apply(g, cn, l, AR__CNN_1X1, z, L->Wr, L->br)) : z;
            if (l < c->layers) v = ar_gate(g, vp); /* the last one would go unused */
        }
    } else {
        h = ar__cnn_apply(g, cn, 0, AR__CNN_MAIN, in, cn->L[0].W, cn->L[0].b);
        for (l = 1; l <= c->layers; l++) {
            const ar_cnn_layer *L = &cn->L[l];
            z = ar_gate(g, ar__cnn_apply(g, cn, l, AR__CNN_MAIN, h, L->W, L->b));
            h = ar_add(g, h, ar__cnn_apply(g, cn, l, AR__CNN_1X1, z, L->Wr, L->br));
            z = ar__cnn_apply(g, cn, l, AR__CNN_1X1, z, L->Ws, L->bs);
            skip = skip ? ar_add(g, skip, z) : z;
        }
        if (skip) h = skip;
    }
    h = ar_relu(g, ar__cnn_apply(g, cn, 0, AR__CNN_1X1, ar_relu(g, h), cn->W1, cn->b1));
    h = ar__cnn_apply(g, cn, 0, AR__CNN_1X1, h, cn->W2, cn->b2);
    s4[1] = cn->H;
    s4[2] = cn->W;
    s4[3] = ar__cnn_outs(c);
    return ar_reshape(g, h, 4, s4);
}

static ar_tensor *ar__cnn_nll(const ar_cnn *cn, ar_graph *g, const float *x, int N)
{
    ar_tensor *lg = ar__cnn_logits(cn, g, x, N);
    int s3[3], *labels, HW;
    size_t i;
    if (!lg) return NULL;
    HW = cn->H * cn->W;
    s3[0] = N; s3[1] = HW; s3[2] = ar__cnn_outs(&cn->cfg);
    if (cn->cfg.levels == 1) return ar_bce_logits(g, ar_reshape(g, lg, 2, s3), x);
    if (!(labels = (int *)ar_graph_alloc(g, (size_t)N * HW * sizeof(int)))) {
        ar__fail(g, AR_ERR_NOMEM, "cnn: out of memory");
        return NULL;
    }
    for (i = 0; i < (size_t)N * HW; i++) labels[i] = (int)x[i];
    return ar_sum(g, ar_cross_entropy(g, ar_reshape(g, lg, 3, s3), labels), 1);
}

/* ---- sampling ------------------------------------------------------------- */

/* Activations kept while sampling: every map the next pixel's layers read. */
typedef struct ar__cnn_run {
    int N, HW, F, K;
    float *in;                          /* [N,HW,Cin] */
    float *h[AR_CNN_MAX_LAYERS];        /* [N,HW,F] */
    float *vp[AR_CNN_MAX_LAYERS];       /* gated: [N,HW,2F] vertical pre-activations */
    float *v[AR_CNN_MAX_LAYERS];        /* gated: [N,HW,F], all but the last layer */
    float *cols, *a, *b, *z, *t, *skip; /* scratch: [N,K], [N,2F] x2, [N,F] x3 */
} ar__cnn_run;

/* out[N,Co] = the conv of map at pixel (row, col) of each image. */
static void ar__cnn_at(const ar_cnn *cn, ar__cnn_run *s, int l, int which, const float *map, const ar_tensor *Wt,
                       const ar_tensor *b, int row, int col, float *out)
{
    ar__conv q = ar__cnn_conv(cn, l, which, Wt);
    size_t img = (size_t)s->HW * q.Ci;
    int n, K = q.taps * q.Ci;
    for (n = 0; n < s->N; n++) ar__conv_col(&q, (float *)map + n * img, row, col, s->cols + (size_t)n * K, 0);
    ar__conv_gemm(&q, s->N, s->cols, Wt->x, b->x, Wt->shape[0], out);
}

/* out[N,Co] = 1x1 conv of vectors x[N,Ci] (no gather needed). */
static void ar__cnn_1x1(const ar_cnn *cn, const ar__cnn_run *s, const float *x, const ar_tensor *Wt,
                        const ar_tensor *b, float *out)
{
    ar__conv q = ar__cnn_conv(cn, 0, AR__CNN_1X1, Wt);
    ar__conv_gemm(&q, s->N, x, Wt->x, b->x, Wt->shape[0], out);
}

/* Stores rows[N,C] as pixel p of each image of map [N,HW,C]. */
static void ar__cnn_put(const ar__cnn_run *s, float *map, int C, int p, const float *rows)
{
    int n;
    for (n = 0; n < s->N; n++) memcpy(map + ((size_t)n * s->HW + p) * C, rows + (size_t)n * C, (size_t)C * sizeof(float));
}

static void ar__cnn_gate_rows(const ar__cnn_run *s, const float *a, float *z)
{
    int n;
    for (n = 0; n < s->N; n++) ar__gate_row(a + (size_t)n * 2 * s->F, s->F, z + (size_t)n * s->F);
}

/* Every layer at pixel p, from the kept maps; the head's logits into out [N,P]. */
static void ar__cnn_pixel(const ar_cnn *cn, ar__cnn_run *s, int p, float *out)
{
    const ar_cnn_cfg *c = &cn->cfg;
    int l, n, j, F = s->F, NF = s->N * s->F, wave = cn->kind == AR_WAVENET;
    int row = wave ? 0 : p / cn->W, col = wave ? p : p % cn->W;
    float *last;
    if (cn->kind == AR_GATED && col == 0 && row > 0) /* the vertical stack, the whole row above */
        for (l = 0; l <= c->layers; l++)
            for (j = 0; j < cn->W; j++) {
                ar__cnn_at(cn, s, l, AR__CNN_VERT, l ? s->v[l - 1] : s->in, cn->L[l].Wv, cn->L[l].bv, row - 1, j, s->a);
                ar__cnn_put(s, s->vp[l], 2 * F, p - cn->W + j, s->a);
                if (l == c->layers) continue;
                ar__cnn_gate_rows(s, s->a, s->z);
                ar__cnn_put(s, s->v[l], F, p - cn->W + j, s->z);
            }
    for (l = 0; l <= c->layers; l++) {
        const ar_cnn_layer *L = &cn->L[l];
        const float *below = l ? s->h[l - 1] : s->in;
        ar__cnn_at(cn, s, l, AR__CNN_MAIN, below, L->W, L->b, row, col, s->a);
        if (cn->kind == AR_PIXELCNN) {
            for (j = 0; j < NF; j++) s->a[j] = s->a[j] > 0 ? s->a[j] : 0;
            if (!l) { ar__cnn_put(s, s->h[0], F, p, s->a); continue; }
            for (n = 0; n < s->N; n++)
                for (j = 0; j < F; j++) s->a[n * F + j] += below[((size_t)n * s->HW + p) * F + j];
            ar__cnn_put(s, s->h[l], F, p, s->a);
            continue;
        }
        if (cn->kind == AR_GATED) {
            ar__cnn_at(cn, s, l, AR__CNN_LINK, s->vp[l], L->Wl, L->bl, row, col, s->b);
            for (j = 0; j < 2 * NF; j++) s->a[j] += s->b[j];
        } else if (!l) {
            ar__cnn_put(s, s->h[0], F, p, s->a);
            continue;
        }
        ar__cnn_gate_rows(s, s->a, s->z);
        if (!l) { ar__cnn_put(s, s->h[0], F, p, s->z); continue; }
        ar__cnn_1x1(cn, s, s->z, L->Wr, L->br, s->t);
        for (n = 0; n < s->N; n++)
            for (j = 0; j < F; j++) s->t[n * F + j] += below[((size_t)n * s->HW + p) * F + j];
        ar__cnn_put(s, s->h[l], F, p, s->t);
        if (wave) {
            ar__cnn_1x1(cn, s, s->z, L->Ws, L->bs, s->t);
            for (j = 0; j < NF; j++) s->skip[j] = (l == 1 ? 0 : s->skip[j]) + s->t[j];
        }
    }
    if (wave && c->layers > 0) {
        last = s->skip;
    } else {
        for (n = 0; n < s->N; n++)
            memcpy(s->z + (size_t)n * F, s->h[c->layers] + ((size_t)n * s->HW + p) * F, (size_t)F * sizeof(float));
        last = s->z;
    }
    for (j = 0; j < NF; j++) s->t[j] = last[j] > 0 ? last[j] : 0;
    ar__cnn_1x1(cn, s, s->t, cn->W1, cn->b1, s->a);
    for (j = 0; j < NF; j++) s->a[j] = s->a[j] > 0 ? s->a[j] : 0;
    ar__cnn_1x1(cn, s, s->a, cn->W2, cn->b2, out);
}

static void ar__cnn_run_free(ar__cnn_run *s)
{
    int l;
    AR_FREE(s->in);
    for (l = 0; l < AR_CNN_MAX_LAYERS; l++) {
        AR_FREE(s->h[l]);
        AR_FREE(s->vp[l]);
        AR_FREE(s->v[l]);
    }
    AR_FREE(s->cols);
    AR_FREE(s->a);
}

static float *ar__cnn_zeros(size_t n)
{
    float *p = (float *)ar__malloc(n * sizeof(float));
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

static ar_status ar__cnn_run_init(const ar_cnn *cn, ar__cnn_run *s, int N)
{
    const ar_cnn_cfg *c = &cn->cfg;
    size_t img = (size_t)N * cn->H * cn->W;
    int l, k = c->first_kernel > c->kernel ? c->first_kernel : c->kernel, gated = cn->kind == AR_GATED;
    int ok, Cmax = ar__cnn_cin(c) > 2 * c->channels ? ar__cnn_cin(c) : 2 * c->channels;
    memset(s, 0, sizeof *s);
    s->N = N;
    s->HW = cn->H * cn->W;
    s->F = c->channels;
    s->K = (cn->kind == AR_WAVENET ? 2 : k * k) * Cmax;
    s->in = ar__cnn_zeros(img * ar__cnn_cin(c));
    ok = s->in != NULL;
    for (l = 0; l <= c->layers && ok; l++) {
        s->h[l] = ar__cnn_zeros(img * s->F);
        if (gated) s->vp[l] = ar__cnn_zeros(img * 2 * s->F);
        if (gated && l < c->layers) s->v[l] = ar__cnn_zeros(img * s->F);
        ok = s->h[l] && (!gated || (s->vp[l] && (l == c->layers || s->v[l])));
    }
    s->cols = (float *)ar__malloc((size_t)N * s->K * sizeof(float));
    /* a, b: [N,2F]; z, t, skip: [N,F] */
    s->a = (float *)ar__malloc((size_t)N * 7 * s->F * sizeof(float));
    if (!ok || !s->cols || !s->a) {
        ar__cnn_run_free(s);
        return AR_ERR_NOMEM;
    }
    s->b = s->a + (size_t)N * 2 * s->F;
    s->z = s->b + (size_t)N * 2 * s->F;
    s->t = s->z + (size_t)N * s->F;
    s->skip = s->t + (size_t)N * s->F;
    return AR_OK;
}

ARDEF ar_tensor *ar_cnn_logits(ar_model *m, ar_graph *g, const float *x, int N)
{
    ar_status s = ar__model_ok(m, "ar_cnn_logits", 1u << AR_PIXELCNN | 1u << AR_GATED | 1u << AR_WAVENET);
    ar_tensor *t = NULL;
    if (s == AR_OK && !g) s = ar__merr(m, AR_ERR_ARG, "ar_cnn_logits: graph is NULL");
    if (s == AR_OK && !x) s = ar__merr(m, AR_ERR_ARG, "ar_cnn_logits: x is NULL");
    if (s == AR_OK) s = ar__model_n(m, "ar_cnn_logits", N);
    if (s == AR_OK) s = ar__check_data(m, "ar_cnn_logits", x, NULL, N);
    if (s != AR_OK) {
        ar__fail_graph(g, m, s, "ar_cnn_logits");
        return NULL;
    }
    if (!(t = ar__cnn_logits(m->cnn, g, x, N))) ar__merr(m, g->status ? g->status : AR_ERR_ARG, "%s", g->err);
    return t;
}

/* Pixel by pixel in raster order: cached, each layer at the new pixel from
   activations kept for the pixels before it (O(layers) per pixel); naive,
   a whole forward pass whenever a pixel was drawn since the last one. Both
   give the same logits, so the same draws. */
static ar_status ar__cnn_sample(ar_model *m, ar_graph *g, int N, const ar_sample_opts *o, ar_rng *r, float *x)
{
    const ar_cnn *cn = m->cnn;
    int HW = cn->H * cn->W, P = ar__cnn_outs(&cn->cfg), Cin = ar__cnn_cin(&cn->cfg), p, n, dirty = 1;
    float *out = (float *)ar_graph_alloc(g, ((size_t)N * P + 3 * (size_t)(P > 2 ? P : 2)) * sizeof(float)), *scratch;
    ar__cnn_run s;
    ar__mark mark;
    ar_tensor *lg = NULL;
    ar_status st = AR_OK;
    size_t i;
    memset(&s, 0, sizeof s);
    if (!out || (!o->naive && ar__cnn_run_init(cn, &s, N) != AR_OK))
        return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    scratch = out + (size_t)N * P;
    mark = ar__graph_mark(g);
    for (i = 0; i < (size_t)N * HW; i++) /* given values in place; the rest defined (the network never reads them) */
        x[i] = o->known && o->known[i] ? o->given[i] : 0;
    for (p = 0; p < HW && st == AR_OK; p++) {
        if (!o->naive) {
            ar__cnn_pixel(cn, &s, p, out);
        } else {
            if (dirty) {
                ar__graph_rewind(g, &mark);
                if (!(lg = ar__cnn_logits(cn, g, x, N))) { st = ar__merr(m, g->status, "%s", g->err); break; }
                dirty = 0;
            }
            for (n = 0; n < N; n++) memcpy(out + (size_t)n * P, lg->x + ((size_t)n * HW + p) * P, (size_t)P * sizeof(float));
        }
        for (n = 0; n < N; n++) {
            size_t k = (size_t)n * HW + p;
            int obs = o->known && o->known[k];
            int v = ar__draw(out + (size_t)n * P, P, o, r, scratch, o->probs ? o->probs + k * (P > 2 ? P : 1) : NULL, !obs);
            if (v < 0) { st = ar__merr(m, AR_ERR_NUMERIC, "ar_model_sample: NaN logits at pixel %d", p); break; }
            if (!obs) { x[k] = (float)v; dirty = 1; }
            if (!o->naive) ar__cnn_input(cn, x[k], p, s.in + k * Cin);
        }
    }
    if (!o->naive) ar__cnn_run_free(&s);
    return st;
}

/* ==== SECTION: models — the one interface ================================== */

ARDEF ar_model_cfg ar_model_default(ar_kind kind, int rows, int cols)
{
    ar_model_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.rows = rows;
    c.cols = cols;
    c.seed = 1;
    c.made.n_hidden = kind == AR_FVSBN ? 0 : 1;
    c.made.hidden[0] = 500;
    c.made.direct = 1;
    c.made.n_masks = 1;
    c.nade.H = 500;
    c.nade.K = kind == AR_RNADE ? 10 : 0;
    c.nade.transform = kind == AR_RNADE ? AR_TRANSFORM_LOGIT : AR_TRANSFORM_NONE;
    c.tfm.V = 2;
    c.tfm.d = 64;
    c.tfm.heads = 4;
    c.tfm.layers = 2;
    c.tfm.ffn = 256;
    c.tfm.pos = AR_POS_ROTARY;
    c.cnn.levels = 1;
    c.cnn.channels = kind == AR_PIXELCNN ? 64 : 32;
    c.cnn.layers = kind == AR_WAVENET ? 20 : kind == AR_GATED ? 6 : 5;
    c.cnn.kernel = 3;
    c.cnn.first_kernel = 7;
    c.cnn.dilations = 10;
    return c;
}

ARDEF void ar_model_free(ar_model *m)
{
    if (!m) return;
    ar_params_free(&m->ps);
    if (m->made) {
        AR_FREE(m->made->orders);
        AR_FREE(m->made->labels);
        AR_FREE(m->made->pos);
        AR_FREE(m->made);
    }
    if (m->nade) AR_FREE(m->nade->order);
    AR_FREE(m->nade);
    if (m->tfm) {
        AR_FREE(m->tfm->sinus);
        AR_FREE(m->tfm->order);
        AR_FREE(m->tfm->rank);
        AR_FREE(m->tfm);
    }
    AR_FREE(m->cnn);
    if (m->work) ar_graph_free((ar_graph *)m->work);
    AR_FREE(m->work);
    memset(m, 0, sizeof *m);
}

/* Builds the model cfg describes into m (output only). max_params > 0
   (a loader: the file's size) refuses configurations that need more
   parameters than that before anything large is allocated. */
static ar_status ar__model_build(ar_model *m, const ar_model_cfg *cfg, size_t max_params)
{
    ar_status s;
    size_t total = 0;
    int i, bad;
    memset(m, 0, sizeof *m);
    if (!cfg) return ar__merr(m, AR_ERR_ARG, "ar_model_init: cfg is NULL");
    if ((int)cfg->kind < 0 || (int)cfg->kind >= AR_KIND_COUNT)
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: unknown kind %d", (int)cfg->kind);
    if (cfg->rows < 1 || cfg->cols < 1 || (size_t)cfg->rows * (size_t)cfg->cols > (1u << 22))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: rows = %d, cols = %d; need both >= 1 and rows * cols <= 2^22",
                        cfg->rows, cfg->cols);
    m->cfg = *cfg;
    m->cfg.order = NULL;
    m->kind = cfg->kind;
    m->rows = cfg->rows;
    m->cols = cfg->cols;
    m->D = cfg->rows * cfg->cols;
    if (cfg->order && ar__is_cnn(cfg->kind))
        return ar__merr(m, AR_ERR_ARG, "ar_model_init: the convolutional models generate in raster order (order must be NULL)");
    if (cfg->order && (bad = ar__perm_bad(cfg->order, m->D, NULL)) != -1)
        return bad == -2 ? ar__merr(m, AR_ERR_NOMEM, "ar_model_init: out of memory")
                         : ar__merr(m, AR_ERR_ARG, "ar_model_init: order is not a permutation of [0,%d) (order[%d] = %d)",
                                    m->D, bad, cfg->order[bad]);
    s = cfg->kind <= AR_FVSBN ? ar__made_declare(m, cfg->order)
      : cfg->kind <= AR_RNADE ? ar__nade_declare(m, cfg->order)
      : cfg->kind == AR_TRANSFORMER ? ar__tfm_declare(m, cfg->order) : ar__cnn_declare(m);
    for (i = 0; s == AR_OK && i < m->ps.n; i++) total += m->ps.t[i]->n;
    if (s == AR_OK && max_params && total > max_params)
        s = ar__merr(m, AR_ERR_FORMAT, "the configuration needs %zu parameters, more than the file holds", total);
    if (s == AR_OK && (s = ar_params_alloc(&m->ps)) != AR_OK) ar__merr(m, s, "ar_model_init: %s", m->ps.err);
    if (s == AR_OK) {
        if (m->made) ar__made_fill(m);
        else if (m->nade) ar__nade_fill(m);
        else if (m->tfm) s = ar__tfm_fill(m);
        else ar__cnn_fill(m);
    }
    if (s != AR_OK) {
        char err[AR_ERR_LEN];
        memcpy(err, m->err, AR_ERR_LEN);
        ar_model_free(m);
        memcpy(m->err, err, AR_ERR_LEN);
    }
    return s;
}

ARDEF ar_status ar_model_init(ar_model *m, const ar_model_cfg *cfg)
{
    return m ? ar__model_build(m, cfg, 0) : AR_ERR_ARG;
}

/* -log p(x) [N] on g, x checked. */
static ar_tensor *ar__model_nll(ar_model *m, ar_graph *g, const float *x, int N, ar_rng *rng)
{
    size_t i, n = (size_t)N * m->D;
    int *tok;
    if (m->made)
        return ar__made_nll(m->made, g, x, N, rng && m->made->cfg.n_masks > 1
                                                  ? (int)ar_rng_below(rng, (uint32_t)m->made->cfg.n_masks) : -1);
    if (m->nade) return ar__nade_nll(m->nade, g, x, N);
    if (m->cnn) return ar__cnn_nll(m->cnn, g, x, N);
    if (!(tok = (int *)ar_graph_alloc(g, n * sizeof(int)))) {
        ar__fail(g, AR_ERR_NOMEM, "ar_model_nll: out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) tok[i] = (int)x[i];
    return ar__tfm_nll(m->tfm, g, tok, N, m->D);
}

ARDEF ar_tensor *ar_model_nll(ar_model *m, ar_graph *g, const float *x, int N, ar_rng *rng)
{
    ar_status s = ar__model_ok(m, "ar_model_nll", 0);
    ar_tensor *t;
    if (s == AR_OK && !g) s = ar__merr(m, AR_ERR_ARG, "ar_model_nll: graph is NULL");
    if (s == AR_OK && !x) s = ar__merr(m, AR_ERR_ARG, "ar_model_nll: x is NULL");
    if (s == AR_OK) s = ar__model_n(m, "ar_model_nll", N);
    if (s == AR_OK) s = ar__check_data(m, "ar_model_nll", x, NULL, N);
    if (s == AR_OK && !ar__check(g, "ar_model_nll", NULL, NULL, 0))
        s = ar__merr(m, g->status ? g->status : AR_ERR_ARG, "ar_model_nll: the graph failed before: %s", g->err);
    if (s != AR_OK) {
        ar__fail_graph(g, m, s, "ar_model_nll");
        return NULL;
    }
    if (!(t = ar__model_nll(m, g, x, N, rng))) ar__merr(m, g->status ? g->status : AR_ERR_ARG, "%s", g->err);
    return t;
}

/* log p(x) [N] on the work graph: k = -1 the model (MADE: the mixture),
   k >= 0 MADE's set k alone. */
static ar_status ar__log_prob(ar_model *m, const char *who, const float *x, int N, int k, float *out)
{
    ar_graph *g;
    ar_tensor *nll;
    ar_status s;
    int n;
    if (!x || !out) return ar__merr(m, AR_ERR_ARG, "%s: x and out must not be NULL", who);
    if ((s = ar__model_n(m, who, N)) != AR_OK || (s = ar__check_data(m, who, x, NULL, N)) != AR_OK) return s;
    if (!(g = ar__work(m))) return ar__merr(m, AR_ERR_NOMEM, "%s: out of memory", who);
    if (m->made) {
        s = ar__made_log_prob(m, g, x, N, k, out);
    } else if (!(nll = ar__model_nll(m, g, x, N, NULL))) {
        s = ar__merr(m, g->status, "%s", g->err);
    } else {
        for (n = 0; n < N; n++) out[n] = -nll->x[n];
    }
    ar_graph_reset(g);
    for (n = 0; s == AR_OK && n < N; n++)
        if (out[n] != out[n])
            s = ar__merr(m, AR_ERR_NUMERIC, "%s: log p is NaN for example %d (NaN or Inf weights? "
                         "ar_params_check_finite names them)", who, n);
    return s;
}

ARDEF ar_status ar_model_log_prob(ar_model *m, const float *x, int N, float *out)
{
    ar_status s = ar__model_ok(m, "ar_model_log_prob", 0);
    return s != AR_OK ? s : ar__log_prob(m, "ar_model_log_prob", x, N, -1, out);
}

ARDEF ar_status ar_made_log_prob(ar_model *m, const float *x, int N, int k, float *out)
{
    ar_status s = ar__model_ok(m, "ar_made_log_prob", 1u << AR_MADE | 1u << AR_FVSBN);
    if (s != AR_OK) return s;
    if (k < -1 || k >= m->made->cfg.n_masks)
        return ar__merr(m, AR_ERR_ARG, "ar_made_log_prob: mask set %d outside [-1,%d)", k, m->made->cfg.n_masks);
    return ar__log_prob(m, "ar_made_log_prob", x, N, k, out);
}

ARDEF ar_status ar_model_sample(ar_model *m, int N, const ar_sample_opts *opts, ar_rng *rng, float *x)
{
    ar_status s = ar__model_ok(m, "ar_model_sample", 0);
    const char *bad;
    ar_graph *g;
    if (s != AR_OK) return s;
    if (!opts || !rng || !x) return ar__merr(m, AR_ERR_ARG, "ar_model_sample: opts, rng and x must not be NULL");
    if ((bad = ar__opts_bad(opts)) != NULL) return ar__merr(m, AR_ERR_ARG, "ar_model_sample: %s", bad);
    if (!opts->given != !opts->known)
        return ar__merr(m, AR_ERR_ARG, "ar_model_sample: given and known go together (both set or both NULL)");
    if (N > (1 << 20)) return ar__merr(m, AR_ERR_ARG, "ar_model_sample: N = %d, need N <= 2^20", N);
    if (opts->draft && (bad = ar__draft_bad(m, opts)) != NULL) return ar__merr(m, AR_ERR_ARG, "ar_model_sample: %s", bad);
    if ((s = ar__model_n(m, "ar_model_sample", N)) != AR_OK) return s;
    if (opts->given && (s = ar__check_data(m, "ar_model_sample (given)", opts->given, opts->known, N)) != AR_OK) return s;
    if (!(g = ar__work(m))) return ar__merr(m, AR_ERR_NOMEM, "ar_model_sample: out of memory");
    s = m->made ? ar__made_sample(m, g, N, opts, rng, x)
      : m->nade ? ar__nade_sample(m, g, N, opts, rng, x)
      : m->tfm ? (opts->draft ? ar__tfm_spec_sample : ar__tfm_sample)(m, g, N, opts, rng, x)
      : ar__cnn_sample(m, g, N, opts, rng, x);
    ar_graph_reset(g);
    if (s == AR_OK) m->err[0] = 0; /* a cache step inside may have cleared and set nothing else */
    return s;
}

/* log((count + 1) / (n + 2)) odds, or log-frequency with add-one smoothing. */
ARDEF ar_status ar_model_init_bias(ar_model *m, const float *x, int N)
{
    ar_status s = ar__model_ok(m, "ar_model_init_bias", 0);
    size_t n, i, D;
    int d, v, L;
    if (s != AR_OK) return s;
    if (!x) return ar__merr(m, AR_ERR_ARG, "ar_model_init_bias: x is NULL");
    if ((s = ar__model_n(m, "ar_model_init_bias", N)) != AR_OK ||
        (s = ar__check_data(m, "ar_model_init_bias", x, NULL, N)) != AR_OK)
        return s;
    D = (size_t)m->D;
    if (m->made || (m->nade && !m->nade->cfg.K)) { /* per dimension: log-odds of its mean */
        float *b = m->made ? m->made->c->x : m->nade->b->x;
        for (d = 0; d < m->D; d++) {
            double p = 0;
            for (n = 0; n < (size_t)N; n++) p += x[n * D + d];
            p = (p + 1) / (N + 2);
            b[d] = (float)log(p / (1 - p));
        }
    } else if (m->nade) {
        /* RNADE: each dimension's mixture spreads its means over mean +- 2 sd
           of the (transformed) data with that width, and V starts at 0, so
           the first conditionals are exactly these marginals (random V would
           move a narrow dimension's means by many widths). Widths are floored
           at a tenth of the average, so a constant dimension is not a spike. */
        const ar_nade *nd = m->nade;
        int K = nd->cfg.K, k;
        double *mom = (double *)ar__malloc(2 * D * sizeof(double)), avg = 0;
        if (!mom) return ar__merr(m, AR_ERR_NOMEM, "ar_model_init_bias: out of memory");
        for (d = 0; d < m->D; d++) {
            double s1 = 0, s2 = 0, unused = 0;
            for (n = 0; n < (size_t)N; n++) {
                double y = nd->cfg.transform == AR_TRANSFORM_LOGIT ? ar__to_logit(x[n * D + d], &unused) : x[n * D + d];
                s1 += y;
                s2 += y * y;
            }
            mom[2 * d] = s1 / N;
            mom[2 * d + 1] = sqrt(s2 / N - (s1 / N) * (s1 / N) > 0 ? s2 / N - (s1 / N) * (s1 / N) : 0);
            avg += mom[2 * d + 1] / m->D;
        }
        for (d = 0; d < m->D; d++) {
            double mu = mom[2 * d], sd = mom[2 * d + 1];
            float *b = nd->b->x + (size_t)d * 3 * K;
            if (sd < 0.1 * avg) sd = 0.1 * avg;
            if (sd < 1e-3) sd = 1e-3;
            for (k = 0; k < K; k++) {
                b[k] = 0;
                b[K + k] = (float)(mu + (K > 1 ? sd * (-2.0 + 4.0 * k / (K - 1)) : 0));
                b[2 * K + k] = (float)log(sd);
            }
        }
        ar_fill(nd->V, 0);
        AR_FREE(mom);
    } else { /* Transformer, CNNs: one bias per value for all places */
        float *b = m->tfm ? m->tfm->bout->x : m->cnn->b2->x;
        double *cnt;
        L = m->levels;
        if (!(cnt = (double *)ar__malloc((size_t)L * sizeof(double))))
            return ar__merr(m, AR_ERR_NOMEM, "ar_model_init_bias: out of memory");
        for (v = 0; v < L; v++) cnt[v] = 1;
        for (i = 0; i < (size_t)N * D; i++) cnt[(int)x[i]] += 1;
        if (m->cnn && m->cnn->cfg.levels == 1) b[0] = (float)log(cnt[1] / cnt[0]); /* one Bernoulli logit */
        else for (v = 0; v < L; v++) b[v] = (float)log(cnt[v] / ((double)N * D + L));
        AR_FREE(cnt);
    }
    return AR_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */

/* Metadata helpers: set a number, set a list of ints. */
static ar_status ar__meta_num(ar_meta *meta, const char *key, unsigned long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", v);
    return ar_meta_set(meta, key, num);
}

/* "a,b,c" for n ints (n may be 0: ""). */
static ar_status ar__meta_list(ar_meta *meta, const char *key, const int *v, size_t n)
{
    size_t cap = n * 12 + 1, len = 0, i;
    char *s = (char *)ar__malloc(cap);
    ar_status st;
    if (!s) return AR_ERR_NOMEM;
    s[0] = 0;
    for (i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, i ? ",%d" : "%d", v[i]);
    st = ar_meta_set(meta, key, s);
    AR_FREE(s);
    return st;
}

/* The model's whole description as checkpoint metadata. */
static ar_status ar__model_meta(const ar_model *m, ar_meta *meta)
{
    const ar_model_cfg *c = &m->cfg;
    ar_status s = ar_meta_set(meta, "ar.model", ar__kind_names[m->kind]);
#define AR__NUM(k, v) if (s == AR_OK) s = ar__meta_num(meta, k, (unsigned long long)(v))
    if (s == AR_OK) s = ar_meta_set(meta, "ar.version", ar_version());
    AR__NUM("rows", m->rows);
    AR__NUM("cols", m->cols);
    AR__NUM("seed", c->seed);
    if (s == AR_OK && c->order) s = ar__meta_list(meta, "order", c->order, (size_t)m->D);
    if (m->made) {
        const ar_made *md = m->made;
        AR__NUM("direct", md->cfg.direct);
        AR__NUM("n_masks", md->cfg.n_masks);
        AR__NUM("order_agnostic", md->cfg.order_agnostic);
        if (s == AR_OK) s = ar__meta_list(meta, "hidden", md->cfg.hidden, (size_t)md->cfg.n_hidden);
        if (s == AR_OK) s = ar__meta_list(meta, "orders", md->orders, (size_t)md->cfg.n_masks * m->D);
        if (s == AR_OK) s = ar__meta_list(meta, "labels", md->labels, (size_t)md->cfg.n_masks * ar__made_units(&md->cfg));
    } else if (m->nade) {
        AR__NUM("H", m->nade->cfg.H);
        AR__NUM("K", m->nade->cfg.K);
        AR__NUM("transform", m->nade->cfg.transform);
    } else if (m->tfm) {
        const ar_tfm_cfg *t = &m->tfm->cfg;
        AR__NUM("V", t->V); AR__NUM("d", t->d); AR__NUM("heads", t->heads);
        AR__NUM("layers", t->layers); AR__NUM("ffn", t->ffn); AR__NUM("pos", t->pos);
    } else {
        const ar_cnn_cfg *k = &m->cnn->cfg;
        AR__NUM("levels", k->levels); AR__NUM("channels", k->channels); AR__NUM("layers", k->layers);
        AR__NUM("kernel", k->kernel); AR__NUM("first_kernel", k->first_kernel);
        AR__NUM("dilations", k->dilations); AR__NUM("coords", k->coords);
    }
#undef AR__NUM
    return s;
}

/* To a file (path) or to memory (buf, len): the one save. */
static ar_status ar__model_save(ar_model *m, const char *who, const char *path, unsigned char **buf, size_t *len)
{
    ar_status s = ar__model_ok(m, who, 0);
    ar_meta meta;
    if (s != AR_OK) return s;
    if (!path && (!buf || !len)) return ar__merr(m, AR_ERR_ARG, "%s: buf and len must not be NULL", who);
    if (!ar__finite(m->ps.x, m->ps.total)) return ar__merr(m, AR_ERR_NUMERIC, "%s: the weights hold NaN or Inf (not saved)", who);
    ar_meta_init(&meta);
    if ((s = ar__model_meta(m, &meta)) != AR_OK) ar__merr(m, s, "%s: out of memory", who);
    else if ((s = path ? ar_params_save(&m->ps, path, &meta) : ar_params_save_mem(&m->ps, &meta, buf, len)) != AR_OK)
        ar__merr(m, s, "%s", m->ps.err);
    ar_meta_free(&meta);
    return s;
}

ARDEF ar_status ar_model_save(ar_model *m, const char *path)
{
    if (m && !path) return ar__merr(m, AR_ERR_ARG, "ar_model_save: path is NULL");
    return ar__model_save(m, "ar_model_save", path, NULL, NULL);
}

ARDEF ar_status ar_model_save_mem(ar_model *m, unsigned char **buf, size_t *len)
{
    return ar__model_save(m, "ar_model_save_mem", NULL, buf, len);
}

/* An int in [lo, hi] from the metadata; 0 (and a message naming the key)
   when it is missing or malformed. */
static int ar__meta_int(const ar_meta *meta, const char *key, int *v, long long lo, long long hi, char *err)
{
    uint64_t u;
    if (!ar__meta_u64(meta, key, &u) || (long long)u < lo || u > (uint64_t)hi) {
        ar__seterr(err, "missing or malformed \"%s\" in __metadata__ (need %lld..%lld)", key, lo, hi);
        return 0;
    }
    *v = (int)u;
    return 1;
}

/* n ints of a metadata list; 0 when malformed or of another length. */
static int ar__meta_ints_n(const ar_meta *meta, const char *key, int *v, size_t n, char *err)
{
    const char *s = ar_meta_get(meta, key);
    size_t i = 0;
    if (s && !*s && n == 0) return 1;
    while (s && i < n) {
        long long x = 0;
        if (*s < '0' || *s > '9') break;
        while (*s >= '0' && *s <= '9' && x <= 0x7fffffff) x = x * 10 + (*s++ - '0');
        if (x > 0x7fffffff) break;
        v[i++] = (int)x;
        if (*s == ',' && i < n) s++;
        else break;
    }
    if (s && i == n && !*s) return 1;
    ar__seterr(err, "missing or malformed \"%s\" in __metadata__ (need %zu integers)", key, n);
    return 0;
}

/* "MAJOR.MINOR.PATCH" against the version rule (FILE FORMAT); legacy gets
   whether it is a 0.4 file. */
static ar_status ar__check_version(const char *v, int *legacy, char *err)
{
    int part[3], i;
    const char *s = v;
    for (i = 0; s && i < 3; i++) {
        long x = 0;
        if (*s < '0' || *s > '9') break;
        while (*s >= '0' && *s <= '9' && x < 100000) x = x * 10 + (*s++ - '0');
        part[i] = (int)x;
        if (i < 2 && *s++ != '.') break;
    }
    if (!v || i < 3 || *s) {
        ar__seterr(err, "ar.version \"%.40s\" is not MAJOR.MINOR.PATCH", v ? v : "(absent)");
        return AR_ERR_VERSION;
    }
    if (part[0] != AR_VERSION_MAJOR || part[1] > AR_VERSION_MINOR || (part[0] == 0 && part[1] < 4)) {
        ar__seterr(err, "written by ar.h %.40s; this is ar.h %s, which reads %d.%d to %d.%d", v, ar_version(),
                   AR_VERSION_MAJOR, AR_VERSION_MAJOR ? 0 : 4, AR_VERSION_MAJOR, AR_VERSION_MINOR);
        return AR_ERR_VERSION;
    }
    *legacy = part[0] == 0 && part[1] == 4;
    return AR_OK;
}

/* The configuration a checkpoint's metadata describes (order: a new array
   or NULL, the caller frees it). len bounds what the file can ask for. */
static ar_status ar__cfg_from_meta(const ar_meta *meta, size_t len, int legacy, ar_model_cfg *c, int **order,
                                   char *err)
{
    const char *model = ar_meta_get(meta, "ar.model");
    int kind = ar_kind_parse(model), ok = 1, D, n;
    uint64_t seed;
    memset(c, 0, sizeof *c);
    *order = NULL;
    if (legacy && model && !strcmp(model, "cnn")) { /* 0.4 kept one kind for the three CNNs */
        if (!ar__meta_int(meta, "kind", &kind, 0, 2, err)) return AR_ERR_FORMAT;
        kind += AR_PIXELCNN;
    }
    if (kind < 0) {
        ar__seterr(err, "unknown model kind \"%.40s\" in ar.model", model);
        return AR_ERR_FORMAT;
    }
    if (legacy && kind == AR_TRANSFORMER) {
        ar__seterr(err, "a Transformer of ar.h 0.4: its start token was one of its own tokens, chosen by the caller; "
                        "0.5 keeps it inside the model, so this file cannot be read (retrain it)");
        return AR_ERR_VERSION;
    }
    *c = ar_model_default((ar_kind)kind, 1, 1);
    if (!ar__meta_u64(meta, "seed", &seed)) {
        ar__seterr(err, "missing or malformed \"seed\" in __metadata__");
        return AR_ERR_FORMAT;
    }
    c->seed = seed;
    if (!legacy) ok = ar__meta_int(meta, "rows", &c->rows, 1, 1 << 22, err) && ar__meta_int(meta, "cols", &c->cols, 1, 1 << 22, err);
    else if (ar__is_cnn(kind)) ok = ar__meta_int(meta, "H", &c->rows, 1, 4096, err) && ar__meta_int(meta, "W", &c->cols, 1, 4096, err);
    else ok = ar__meta_int(meta, "D", &c->rows, 1, 1 << 20, err), c->cols = 1;
    if (!ok) return AR_ERR_FORMAT;
    if ((size_t)c->rows * c->cols > (1u << 22)) {
        ar__seterr(err, "rows * cols = %zu is too large", (size_t)c->rows * c->cols);
        return AR_ERR_FORMAT;
    }
    D = c->rows * c->cols;
    if (kind <= AR_FVSBN) {
        ok = ar__meta_int(meta, "direct", &c->made.direct, 0, 1, err) &&
             ar__meta_int(meta, "n_masks", &c->made.n_masks, 1, 4096, err) &&
             ar__meta_int(meta, "order_agnostic", &c->made.order_agnostic, 0, 1, err);
        if (ok) {
            const char *h = ar_meta_get(meta, "hidden");
            n = 0;
            if (h && *h)
                for (n = 1; *h; h++) n += *h == ',';
            ok = ar_meta_get(meta, "hidden") && n <= AR_MADE_MAX_HIDDEN &&
                 ar__meta_ints_n(meta, "hidden", c->made.hidden, (size_t)n, err);
            if (!ok) ar__seterr(err, "missing or malformed \"hidden\" in __metadata__");
            c->made.n_hidden = n;
        }
        /* the masks and orderings must fit in the file (stored) or be few enough to rebuild */
        if (ok && (size_t)c->made.n_masks * ((size_t)D + ar__made_units(&c->made)) / (legacy ? 16 : 1) > len) {
            ar__seterr(err, "the configuration's masks need more room than the file has");
            return AR_ERR_FORMAT;
        }
    } else if (kind <= AR_RNADE) {
        ok = ar__meta_int(meta, "H", &c->nade.H, 1, 1 << 20, err) &&
             ar__meta_int(meta, "K", &c->nade.K, 0, AR_NADE_MAX_K, err) &&
             (legacy ? (c->nade.transform = AR_TRANSFORM_NONE, 1)
                     : ar__meta_int(meta, "transform", &c->nade.transform, 0, 1, err));
        if (ok && (kind == AR_RNADE) != (c->nade.K > 0)) {
            ar__seterr(err, "K = %d does not fit ar.model \"%s\"", c->nade.K, model);
            return AR_ERR_FORMAT;
        }
    } else if (kind == AR_TRANSFORMER) {
        ok = ar__meta_int(meta, "V", &c->tfm.V, 2, (1 << 24) - 1, err) && ar__meta_int(meta, "d", &c->tfm.d, 1, 1 << 16, err) &&
             ar__meta_int(meta, "heads", &c->tfm.heads, 1, 1 << 16, err) &&
             ar__meta_int(meta, "layers", &c->tfm.layers, 1, AR_TFM_MAX_LAYERS, err) &&
             ar__meta_int(meta, "ffn", &c->tfm.ffn, 1, 1 << 20, err) && ar__meta_int(meta, "pos", &c->tfm.pos, 0, 2, err);
        if (ok && c->tfm.pos == AR_POS_SINUSOIDAL && (size_t)D * c->tfm.d > len) { /* the table is not in the file */
            ar__seterr(err, "the configuration needs more memory than the file can justify");
            return AR_ERR_FORMAT;
        }
    } else {
        ok = ar__meta_int(meta, "levels", &c->cnn.levels, 1, 65536, err) &&
             ar__meta_int(meta, "channels", &c->cnn.channels, 1, 4096, err) &&
             ar__meta_int(meta, "layers", &c->cnn.layers, 0, AR_CNN_MAX_LAYERS - 1, err) &&
             ar__meta_int(meta, "kernel", &c->cnn.kernel, 0, 31, err) &&
             ar__meta_int(meta, "first_kernel", &c->cnn.first_kernel, 0, 31, err) &&
             ar__meta_int(meta, "dilations", &c->cnn.dilations, 0, 20, err) &&
             ar__meta_int(meta, "coords", &c->cnn.coords, 0, 1, err);
    }
    if (!ok) return AR_ERR_FORMAT;
    if (ar_meta_get(meta, "order")) {
        if (!(*order = (int *)ar__malloc((size_t)D * sizeof(int)))) {
            ar__seterr(err, "out of memory");
            return AR_ERR_NOMEM;
        }
        if (!ar__meta_ints_n(meta, "order", *order, (size_t)D, err)) return AR_ERR_FORMAT;
    }
    return AR_OK;
}

/* MADE's stored orderings and labels replace the ones built from the seed. */
static ar_status ar__made_masks_from_meta(ar_model *m, const ar_meta *meta)
{
    ar_made *md = m->made;
    size_t units = ar__made_units(&md->cfg), K = (size_t)md->cfg.n_masks, k, i;
    int *rank = (int *)ar__malloc((size_t)m->D * sizeof(int)), bad = -1;
    if (!rank) return ar__merr(m, AR_ERR_NOMEM, "out of memory");
    if (!ar__meta_ints_n(meta, "orders", md->orders, K * m->D, m->err) ||
        !ar__meta_ints_n(meta, "labels", md->labels, K * units, m->err)) {
        AR_FREE(rank);
        return AR_ERR_FORMAT;
    }
    for (k = 0; k < K && bad < 0; k++) bad = ar__perm_bad(md->orders + k * m->D, m->D, rank);
    AR_FREE(rank);
    if (bad != -1) return ar__merr(m, AR_ERR_FORMAT, "\"orders\": mask set %zu is not a permutation", k - 1);
    for (i = 0; i < K * units; i++)
        if (md->labels[i] < 1 || md->labels[i] > m->D - 1)
            return ar__merr(m, AR_ERR_FORMAT, "\"labels\": label %zu is %d, outside [1,%d]", i, md->labels[i], m->D - 1);
    ar__made_set(md, 0);
    return AR_OK;
}

ARDEF ar_status ar_model_load_mem(ar_model *m, const unsigned char *buf, size_t len)
{
    ar_meta meta;
    ar_model_cfg cfg;
    ar_model tmp;
    int *order = NULL, legacy = 0;
    char err[AR_ERR_LEN];
    ar_status s;
    if (!m) return AR_ERR_ARG;
    if (!buf) {
        memset(m, 0, sizeof *m);
        return ar__merr(m, AR_ERR_ARG, "ar_model_load_mem: buf is NULL");
    }
    err[0] = 0;
    memset(&tmp, 0, sizeof tmp);
    ar_meta_init(&meta);
    if ((s = ar__st_read_meta(buf, len, &meta, err)) != AR_OK) goto fail;
    if (!ar_meta_get(&meta, "ar.model")) {
        ar__seterr(err, "not an ar.h model: no \"ar.model\" in __metadata__");
        s = AR_ERR_FORMAT;
        goto fail;
    }
    if (!strcmp(ar_meta_get(&meta, "ar.model"), "optim")) {
        ar__seterr(err, "an optimizer state, not a model (ar_optim_load reads it)");
        s = AR_ERR_FORMAT;
        goto fail;
    }
    if ((s = ar__check_version(ar_meta_get(&meta, "ar.version"), &legacy, err)) != AR_OK) goto fail;
    if ((s = ar__cfg_from_meta(&meta, len, legacy, &cfg, &order, err)) != AR_OK) goto fail;
    cfg.order = order;
    if ((s = ar__model_build(&tmp, &cfg, len / 4)) != AR_OK) {
        memcpy(err, tmp.err, AR_ERR_LEN);
        if (s != AR_ERR_NOMEM) s = AR_ERR_FORMAT;
        goto fail;
    }
    if (tmp.made && !legacy && (s = ar__made_masks_from_meta(&tmp, &meta)) != AR_OK) {
        memcpy(err, tmp.err, AR_ERR_LEN);
        goto fail;
    }
    if ((s = ar_params_load_mem(&tmp.ps, buf, len, NULL)) != AR_OK) {
        memcpy(err, tmp.ps.err, AR_ERR_LEN);
        goto fail;
    }
    if (!ar__finite(tmp.ps.x, tmp.ps.total)) {
        ar__seterr(err, "the file's weights hold NaN or Inf");
        s = AR_ERR_NUMERIC;
        goto fail;
    }
    AR_FREE(order);
    ar_meta_free(&meta);
    *m = tmp;
    return AR_OK;
fail:
    AR_FREE(order);
    ar_meta_free(&meta);
    ar_model_free(&tmp);
    memset(m, 0, sizeof *m); /* output only: no model, and nothing to free */
    memcpy(m->err, err, AR_ERR_LEN);
    if (!m->err[0]) ar__seterr(m->err, "%s", ar_status_str(s));
    return s;
}

ARDEF ar_status ar_model_load(ar_model *m, const char *path)
{
    unsigned char *buf;
    size_t len;
    ar_status s;
    if (!m) return AR_ERR_ARG;
    if ((s = ar__read_file(path, &buf, &len, m->err)) != AR_OK) {
        char err[AR_ERR_LEN];
        memcpy(err, m->err, AR_ERR_LEN);
        memset(m, 0, sizeof *m);
        memcpy(m->err, err, AR_ERR_LEN);
        return s;
    }
    if ((s = ar_model_load_mem(m, buf, len)) != AR_OK) ar__err_path(m->err, path);
    AR_FREE(buf);
    return s;
}

/* ==== SECTION: gradient check ============================================ */

static ar_status ar__eval(ar_graph *g, ar_loss_fn f, void *ctx, double *out)
{
    ar_tensor *l;
    ar_graph_reset(g);
    l = f(g, ctx);
    if (!l) return g->status != AR_OK ? g->status : AR_ERR_ARG;
    *out = l->x[0];
    return AR_OK;
}

ARDEF ar_status ar_gradcheck(ar_graph *g, ar_params *ps, ar_loss_fn f, void *ctx, float eps, double *rel_err,
                             const char **worst)
{
    float *analytic;
    ar_tensor *l;
    ar_status s;
    int k, grad = g ? g->grad : 1;
    size_t i;
    if (!g || !ps || !ps->x || !f || !rel_err || !(eps > 0)) return AR_ERR_ARG;
    *rel_err = 0;
    if (worst) *worst = NULL;
    analytic = (float *)ar__malloc(ps->total * sizeof(float));
    if (!analytic) return AR_ERR_NOMEM;
    ar_graph_reset(g);
    ar_graph_set_grad(g, 1);
    l = f(g, ctx);
    ar_params_zero_grad(ps);
    s = l ? ar_backward(g, l) : (g->status != AR_OK ? g->status : AR_ERR_ARG);
    if (s != AR_OK) {
        ar_graph_set_grad(g, grad);
        AR_FREE(analytic);
        return s;
    }
    memcpy(analytic, ps->g, ps->total * sizeof(float));
    ar_graph_set_grad(g, 0);
    for (k = 0; k < ps->n && s == AR_OK; k++) {
        ar_tensor *t = ps->t[k];
        const float *a = analytic + (t->x - ps->x);
        double diff = 0, na = 0, nn = 0, rel;
        for (i = 0; i < t->n && s == AR_OK; i++) {
            float x0 = t->x[i];
            double up = 0, down = 0, num;
            t->x[i] = x0 + eps;
            s = ar__eval(g, f, ctx, &up);
            t->x[i] = x0 - eps;
            if (s == AR_OK) s = ar__eval(g, f, ctx, &down);
            t->x[i] = x0;
            num = (up - down) / (2.0 * eps);
            if (!isfinite(num) || !isfinite(a[i])) { diff = INFINITY; continue; } /* a NaN must not pass */
            diff += (a[i] - num) * (a[i] - num);
            na += (double)a[i] * a[i];
            nn += num * num;
        }
        rel = diff == INFINITY ? INFINITY : sqrt(diff) / (sqrt(na) + sqrt(nn) > 1e-6 ? sqrt(na) + sqrt(nn) : 1e-6);
        if (!(rel < *rel_err)) {
            *rel_err = rel;
            if (worst) *worst = t->name;
        }
    }
    ar_graph_set_grad(g, grad);
    AR_FREE(analytic);
    return s;
}

#endif /* AR_IMPLEMENTATION_DONE */
#endif /* AR_IMPLEMENTATION */

/*
CHANGELOG
    0.1.0 (2026-11-23)  First release: RNG, tensors with reverse-mode
                        autodiff over cblas_sgemm, SGD/Adam/AdamW,
                        safetensors checkpoints, IDX/MNIST loading,
                        gradient checking; MADE, FVSBN, NADE, RNADE,
                        Transformer decoder with a KV cache.
    0.2.0 (2026-11-23)  ar_conv2d (offsets, dilation, masked taps; conv1d
                        is its H = 1 case), ar_gate; ar_cnn: PixelCNN,
                        Gated PixelCNN, WaveNet with cached sampling;
                        Transformer generation orders (cfg.order,
                        ar_causal_softmax_order, ar_tfm_inputs).
    0.2.1 (2026-11-23)  Gated PixelCNN weights start He-uniform (the same
                        seed gives other weights than in 0.2.0); the
                        model loaders share one tail (ar__load_weights).
    0.3.0 (2026-11-24)  ar_attention: multi-head causal self-attention
                        (custom order, rotary) in one op that keeps no
                        n x n weights; the Transformer trains through it,
                        2.5x faster. GELU's Phi is a vectorizable
                        erfc (within 1e-7 of libm's). The arena keeps
                        the blocks it grew (ar_graph.peak is gone): a
                        second step of one shape no longer pages in a
                        fresh block.
    0.4.0 (2026-11-24)  ar_masked_linear: a linear layer masked by
                        connectivity labels that reads and multiplies
                        only the kept weights (rows and columns sorted
                        by label, a staircase of blocks). MADE builds
                        on it and keeps no float masks (ar_made.mask is
                        gone); an 8000-8000 MADE step with order-agnostic
                        masks takes 0.5-0.6 s instead of 0.76 s.
    0.4.1 (2026-11-24)  ar_made_log_prob hands each mask set's scratch
                        back before the next: K sets need the arena of
                        one pass (8000-8000, 32 sets, 500 examples: 0.6
                        GB peak instead of 4.0 GB, 27 s instead of 43).
    0.5.0 (2026-11-30)  One model interface, and the API changes with it.
                        ar_model (ar_model_default/init/load/save/free,
                        ar_model_nll, ar_model_log_prob, ar_model_sample
                        with ar_sample_opts, ar_model_init_bias) replaces
                        the per-family init/nll/log_prob/sample/save/load
                        calls and ar_sampler; family calls that remain
                        (ar_made_set_mask, ar_made_log_prob per mask set,
                        ar_tfm_step, ...) take the ar_model. Errors of
                        every model call land in ar_model.err under one
                        status rule; init and load treat the struct as
                        output only. The Transformer's start token is
                        inside the model (tokens are [0,V); ar_tfm_inputs
                        is gone); a KV cache records and checks the model
                        it was made for. Checkpoints store MADE's masks
                        and orderings and are checked against a version
                        rule (AR_ERR_VERSION); 0.4 files load, except
                        Transformers. Sampling options are validated (NaN
                        temperature or top-p is an error); temperature 0
                        is greedy; every discrete head draws through one
                        O(V) sampler. MADE samples its K-mask mixture.
                        RNADE carries its logit transform. Defaults: MADE
                        with direct connections, rotary positions.
                        AR_MAX_DIM is fixed at 4. AR_MAX_ALLOC caps any
                        single allocation (16 GiB). ar_kind_name and
                        ar_kind_parse name the kinds. Ported code: the
                        scratch of ar_sample_logits is 3V floats (was
                        2V); ar_tfm_step feeds the tokens drawn at the
                        previous step (was: the tokens of this step);
                        a bad mask set is AR_ERR_ARG (was RANGE);
                        ar_optim_load refuses a state saved for another
                        parameter set; the gated PixelCNN's receptive
                        field counts the row its link reaches.
    0.5.1 (2026-12-01)  Decoding at language-model size. Products of at
                        most 4 rows (ar_tfm_step with B <= 4, and any
                        such ar_linear) read each weight once through
                        ar.h's own matrix-vector loop instead of an
                        sgemm that packs the weights first; the step's
                        attention runs without BLAS, keys stored
                        transposed. Built with -fopenmp, those loops use
                        OpenMP's threads, with the same results for
                        every thread count. With rotary positions in the
                        natural order, ar_tfm_step decodes past T: the
                        cache is a ring of the last T steps (sliding-
                        window attention); other models still stop at T.
                        A cache's len may be set back to undo steps
                        (ar_tfm_cache.held records what it holds); a len
                        it cannot take is AR_ERR_ARG, where it used to
                        read slots never written.
                        d288/6 heads/6 layers/V32000 at batch 1 on 2
                        cores: 214 -> 724 tokens/s (make bench).
    0.5.2 (2026-12-01)  Speculative sampling: ar_sample_opts.draft (a
                        Transformer, NADE, MADE or FVSBN) proposes
                        draft_k values, the Transformer checks them in
                        one pass, and the samples still follow the
                        Transformer exactly. ar_tfm_step_n feeds n tokens
                        of every sequence in one pass (prompts, drafts).
                        Models that decode past T keep AR_TFM_MAX_STEP-1
                        spare ring slots: len may undo the last
                        AR_TFM_MAX_STEP steps after the ring wraps (was
                        one). Products of up to 8 rows (was 4) go through
                        ar.h's loop, now in tiles that load each weight
                        once for 4 rows, and the step's attention takes 4
                        rows of a sequence at once: a row's result does
                        not depend on the rows beside it. MNIST digits
                        from a d128 Transformer at batch 1: 2.6x plain
                        decoding with a NADE draft, k = 3 (make bench).

LICENSE
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the ar.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
