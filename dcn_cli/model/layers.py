"""Keras layers of the cross network: DCN-V2 cross, DCN-V1 vector cross, DCN-Mix.

Every layer takes the network input ``x0`` and the previous layer's output
``x_l`` and returns ``x_{l+1}``; with ``x_l`` omitted it is ``x0`` (the first
layer). Keras computes ``x @ K`` where the papers write ``W x``, so a kernel
``K`` stored here is ``W`` transposed: ``K[i, j]`` is how much input feature
``i`` feeds output ``j``. That is the matrix the TensorFlow Recommenders
tutorial plots, and what :meth:`Cross.effective_kernel` returns.

Only ``keras.ops`` is used, so the layers run on any Keras 3 backend.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "dcn_cli"


def _fresh(initializer):
    """A new copy of ``initializer`` for one weight.

    In Keras 3 an unseeded initializer *object* fixes its seed when it is
    created and returns the same values on every call, so one object shared by
    two weights makes them equal (or reshaped copies). Each weight gets its own
    copy, which draws its own seed, as keras-rs and TensorFlow Recommenders do.
    """
    return initializer.__class__.from_config(initializer.get_config())


def _add_kernel(layer: keras.layers.Layer, name: str, shape: tuple):
    """A kernel of ``layer``, from a fresh copy of its kernel initializer."""
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer=_fresh(layer.kernel_initializer),
        regularizer=layer.kernel_regularizer,
    )


def _add_bias(layer: keras.layers.Layer, shape: tuple):
    return layer.add_weight(
        name="bias",
        shape=shape,
        initializer=_fresh(layer.bias_initializer),
        regularizer=layer.bias_regularizer,
    )


def _check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Cross(keras.layers.Layer):
    """DCN-V2 cross layer: ``x_{l+1} = x0 * (W x_l + b) + x_l``.

    With ``projection_dim=r`` the matrix is low-rank, ``W = (U V)^T`` with
    ``U`` of shape ``(d, r)`` and ``V`` of shape ``(r, d)``, which costs
    ``2 d r`` weights instead of ``d^2``. With ``diag_scale=s`` the product
    becomes ``x0 * (W x_l + b + s x_l)``, which helps deep cross networks
    train. ``preactivation`` is applied to ``W x_l + b``.

    Args:
        projection_dim: rank of ``W``; ``None`` (default) for a full matrix.
        diag_scale: non-negative ``s`` added on the diagonal. Default ``0.0``.
        use_bias: whether to add ``b``. Default ``True``.
        preactivation: activation applied to ``W x_l + b``. Default ``None``.
        kernel_initializer: default ``"truncated_normal"`` (stddev 0.05), the
            default of TensorFlow Recommenders' ``Cross``, which the tutorial
            uses.
        bias_initializer: default ``"zeros"``.
        kernel_regularizer: default ``None``.
        bias_regularizer: default ``None``.

    Example:
        >>> x0 = keras.random.normal((4, 8))
        >>> x1 = Cross()(x0)
        >>> x2 = Cross(projection_dim=2)(x0, x1)

    Reference: Wang et al., "DCN V2", arXiv 2008.13535, eq. 1.
    """

    def __init__(
        self,
        projection_dim: int | None = None,
        diag_scale: float = 0.0,
        use_bias: bool = True,
        preactivation: str | None = None,
        kernel_initializer="truncated_normal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive("projection_dim", projection_dim, allow_none=True)
        if diag_scale is None or diag_scale < 0:
            raise ValueError(
                f"`diag_scale` must be non-negative. Received: diag_scale={diag_scale!r}"
            )
        self.projection_dim = projection_dim
        self.diag_scale = float(diag_scale)
        self.use_bias = use_bias
        self.preactivation = keras.activations.get(preactivation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.projection_dim is None:
            self.kernel = _add_kernel(self, "kernel", (dim, dim))
        else:
            self.u_kernel = _add_kernel(self, "u_kernel", (dim, self.projection_dim))
            self.v_kernel = _add_kernel(self, "v_kernel", (self.projection_dim, dim))
        if self.use_bias:
            self.bias = _add_bias(self, (dim,))

    # ``dcn explain --ablate``: a (d, d) mask of 0s and 1s on K while it is set, for eager
    # calls only (a traced function keeps what it saw). Never saved.
    ablation = None
    # ``dcn explain``: zeros of the output's shape added to it while set (eager calls
    # only), so that a gradient tape reads the gradient with respect to the output.
    probe = None

    def call(self, x0, x=None):
        if x is None:
            x = x0
        if self.ablation is not None:
            masked = self.effective_kernel() * self.ablation
            prod = ops.matmul(x, ops.cast(ops.convert_to_tensor(masked), x.dtype))
        elif self.projection_dim is None:
            prod = ops.matmul(x, self.kernel)
        else:
            prod = ops.matmul(ops.matmul(x, self.u_kernel), self.v_kernel)
        if self.use_bias:
            prod = prod + self.bias
        if self.preactivation is not None:
            prod = self.preactivation(prod)
        if self.diag_scale:
            prod = prod + self.diag_scale * x
        if self.probe is not None:
            return x0 * prod + x + self.probe
        return x0 * prod + x

    def compute_output_shape(self, x0_shape, x_shape=None):
        return x0_shape

    def effective_kernel(self):
        """The ``(d, d)`` matrix ``K`` with ``W x = x @ K``, as a NumPy array."""
        if self.projection_dim is None:
            return ops.convert_to_numpy(self.kernel)
        return ops.convert_to_numpy(ops.matmul(self.u_kernel, self.v_kernel))

    def get_config(self):
        config = super().get_config()
        config.update(
            projection_dim=self.projection_dim,
            diag_scale=self.diag_scale,
            use_bias=self.use_bias,
            preactivation=keras.activations.serialize(self.preactivation)
            if self.preactivation is not None
            else None,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorCross(keras.layers.Layer):
    """DCN-V1 cross layer: ``x_{l+1} = x0 (w^T x_l) + b + x_l``.

    One weight vector ``w`` and one bias ``b``, both of the input's width:
    ``2 d`` parameters. The bias sits outside the product.

    Args:
        use_bias: whether to add ``b``. Default ``True``.
        kernel_initializer: default ``"glorot_uniform"``.
        bias_initializer: default ``"zeros"``.
        kernel_regularizer: default ``None``.
        bias_regularizer: default ``None``.

    Example:
        >>> x0 = keras.random.normal((4, 8))
        >>> x1 = VectorCross()(x0)

    Reference: Wang et al., "Deep & Cross Network for Ad Click Predictions",
    AdKDD 2017, eq. 3.
    """

    def __init__(
        self,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        dim = input_shape[-1]
        # Stored as a (d, 1) column so that glorot_uniform sees fan_in=d, fan_out=1.
        self.kernel = _add_kernel(self, "kernel", (dim, 1))
        if self.use_bias:
            self.bias = _add_bias(self, (dim,))

    # ``dcn explain``: as Cross.ablation and Cross.probe. Never saved.
    ablation = None
    probe = None

    def call(self, x0, x=None):
        if x is None:
            x = x0
        if self.ablation is not None:
            # Output j takes x0_j * sum_i x_i w_i mask[i, j]: cross (i, j) taken away.
            masked = ops.convert_to_tensor(self.ablation, x.dtype) * ops.cast(self.kernel, x.dtype)
            out = x0 * ops.matmul(x, masked) + x
        else:
            out = x0 * ops.matmul(x, self.kernel) + x
        if self.use_bias:
            out = out + self.bias
        if self.probe is not None:
            out = out + self.probe
        return out

    def compute_output_shape(self, x0_shape, x_shape=None):
        return x0_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixCross(keras.layers.Layer):
    """DCN-Mix layer: a softmax-gated mixture of low-rank cross experts.

    ``x_{l+1} = sum_i G_i(x_l) E_i(x_l) + x_l`` with experts
    ``E_i(x) = x0 * (U_i g(C_i g(V_i^T x)) + b)`` and gate
    ``G(x) = softmax(x @ gate_kernel)`` over the experts. In Keras' row
    layout expert ``i`` computes ``g(g(x @ V_i) @ C_i) @ U_i`` with ``V_i`` of
    shape ``(d, r)``, ``C_i`` of ``(r, r)`` and ``U_i`` of ``(r, d)``.

    Args:
        projection_dim: rank ``r`` of each expert. Default ``32``.
        num_experts: number of experts. Default ``4``.
        activation: the non-linearity ``g``. Default ``"tanh"``.
        use_bias: whether to add ``b``, one bias per layer that every expert
            shares, as the paper writes it (and DeepCTR's ``CrossNetMix``).
            Default ``True``.
        kernel_initializer: default ``"glorot_uniform"``.
        bias_initializer: default ``"zeros"``.
        kernel_regularizer: default ``None``.
        bias_regularizer: default ``None``.

    Example:
        >>> x0 = keras.random.normal((4, 8))
        >>> x1 = MixCross(projection_dim=2, num_experts=3)(x0)

    Reference: Wang et al., "DCN V2", arXiv 2008.13535, eq. 3-4.
    """

    def __init__(
        self,
        projection_dim: int = 32,
        num_experts: int = 4,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive("projection_dim", projection_dim)
        _check_positive("num_experts", num_experts)
        self.projection_dim = projection_dim
        self.num_experts = num_experts
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        dim, rank, experts = input_shape[-1], self.projection_dim, self.num_experts
        self.v_kernel = _add_kernel(self, "v_kernel", (experts, dim, rank))
        self.c_kernel = _add_kernel(self, "c_kernel", (experts, rank, rank))
        self.u_kernel = _add_kernel(self, "u_kernel", (experts, rank, dim))
        self.gate_kernel = _add_kernel(self, "gate_kernel", (dim, experts))
        if self.use_bias:
            self.bias = _add_bias(self, (dim,))  # one per layer, shared by the experts

    def call(self, x0, x=None):
        if x is None:
            x = x0
        g = self.activation
        low = g(ops.einsum("bd,edr->ber", x, self.v_kernel))
        low = g(ops.einsum("ber,ers->bes", low, self.c_kernel))
        prod = ops.einsum("bes,esd->bed", low, self.u_kernel)
        if self.use_bias:
            prod = prod + self.bias
        experts = ops.expand_dims(x0, 1) * prod  # (batch, experts, d)
        gate = ops.softmax(ops.matmul(x, self.gate_kernel), axis=-1)  # (batch, experts)
        return ops.sum(ops.expand_dims(gate, -1) * experts, axis=1) + x

    def compute_output_shape(self, x0_shape, x_shape=None):
        return x0_shape

    def expert_kernels(self):
        """Each expert's linear part ``V_i C_i U_i``, shape ``(experts, d, d)``.

        This ignores ``g``; near zero ``tanh`` is close to the identity, so it
        is the natural matrix to draw for an expert.
        """
        vc = ops.matmul(self.v_kernel, self.c_kernel)
        return ops.convert_to_numpy(ops.matmul(vc, self.u_kernel))

    def get_config(self):
        config = super().get_config()
        config.update(
            projection_dim=self.projection_dim,
            num_experts=self.num_experts,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config


CROSS_TYPES = {"matrix": Cross, "vector": VectorCross, "mix": MixCross}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossNetwork(keras.layers.Layer):
    """``num_layers`` stacked cross layers of one kind; each one sees ``x0``.

    ``x_1 = f_0(x0, x0)``, ``x_{l+1} = f_l(x0, x_l)``; the output is ``x_L``.

    Args:
        num_layers: how many cross layers. Default ``1``.
        cross_type: ``"matrix"`` (DCN-V2, :class:`Cross`), ``"vector"``
            (DCN-V1, :class:`VectorCross`) or ``"mix"`` (:class:`MixCross`).
            Default ``"matrix"``.
        **layer_kwargs: passed to every cross layer, for example
            ``projection_dim=20`` or ``num_experts=4``. Any other keyword
            Keras itself takes (``name``, ``dtype``) goes to this layer.

    Example:
        >>> net = CrossNetwork(num_layers=3, projection_dim=8)
        >>> y = net(keras.random.normal((4, 32)))
    """

    _BASE_KWARGS = ("name", "dtype", "trainable", "autocast")

    def __init__(self, num_layers: int = 1, cross_type: str = "matrix", **kwargs):
        base = {k: kwargs.pop(k) for k in self._BASE_KWARGS if k in kwargs}
        super().__init__(**base)
        _check_positive("num_layers", num_layers)
        if cross_type not in CROSS_TYPES:
            raise ValueError(
                f"`cross_type` must be one of {sorted(CROSS_TYPES)}. "
                f"Received: cross_type={cross_type!r}"
            )
        self.num_layers = num_layers
        self.cross_type = cross_type
        layer_class = CROSS_TYPES[cross_type]
        self.cross_layers = [
            layer_class(name=f"cross_{i}", dtype=self.dtype_policy, **kwargs)
            for i in range(num_layers)
        ]

    def build(self, input_shape):
        for layer in self.cross_layers:
            layer.build(input_shape)

    def call(self, x0):
        x = x0
        for layer in self.cross_layers:
            x = layer(x0, x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        # The first cross layer's own config serialises the shared keywords
        # (initializers, regularizers) properly; drop what is per-layer.
        layer_config = self.cross_layers[0].get_config()
        for key in self._BASE_KWARGS:
            layer_config.pop(key, None)
        config = super().get_config()
        config.update(num_layers=self.num_layers, cross_type=self.cross_type, **layer_config)
        return config
