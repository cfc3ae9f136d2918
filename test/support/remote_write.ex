defmodule Tms.Test.RemoteWrite do
  @moduledoc false
  # remote_write bodies for tests: a protobuf WriteRequest built field by
  # field, in snappy's block format with literals only (valid, if
  # uncompressed).
  import Bitwise

  @doc """
  `series` is `[{labels, samples}]`, labels `[{name, value}]` (with
  `__name__`), samples `[{value, ts_ms}]` where a value is a float or its
  8 bytes (for exact NaN payloads).
  """
  def body(series), do: series |> write_request() |> snappy()

  def write_request(series) do
    for {labels, samples} <- series, into: <<>> do
      labels = for {k, v} <- labels, into: <<>>, do: field(1, field(1, k) <> field(2, v))

      samples =
        for {v, ts} <- samples, into: <<>> do
          bits = if is_binary(v), do: v, else: <<v::little-float-64>>
          field(2, <<9, bits::binary, 16, varint(ts)::binary>>)
        end

      field(1, labels <> samples)
    end
  end

  def snappy(data) do
    literals = for <<chunk::binary-size(60) <- data>>, into: <<>>, do: <<59 <<< 2, chunk::binary>>
    rest = binary_part(data, div(byte_size(data), 60) * 60, rem(byte_size(data), 60))
    tail = if rest == "", do: "", else: <<(byte_size(rest) - 1) <<< 2, rest::binary>>
    varint(byte_size(data)) <> literals <> tail
  end

  def varint(n) when n < 0, do: varint(n + (1 <<< 64))
  def varint(n) when n < 128, do: <<n>>
  def varint(n), do: <<bor(band(n, 127), 128), varint(n >>> 7)::binary>>

  @doc "A length-delimited field `number` holding `bytes`."
  def field(number, bytes),
    do: <<varint(number * 8 + 2)::binary, varint(byte_size(bytes))::binary, bytes::binary>>
end
