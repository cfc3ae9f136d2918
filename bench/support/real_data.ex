# The remote_write encoding the tests use (protobuf fields, snappy literals).
Code.require_file("../../test/support/remote_write.ex", __DIR__)

defmodule Tms.Bench.RealData do
  @moduledoc false
  # The real scrape in ../shared/data (node_exporter, Prometheus and
  # VictoriaMetrics every 2 s for 40 minutes; its README gives the format),
  # and request bodies built from it the way exporters and Prometheus send
  # them. Shared by the benchmarks that compare with VictoriaMetrics.
  import Tms.Test.RemoteWrite, only: [field: 2, snappy: 1, varint: 1]

  @path Path.expand("../../../shared/data/real_scrape_2s_40m.tsv.gz", __DIR__)

  @doc """
  `{series, scrapes}`: `series` a tuple of `{metric, labels}` (labels a
  sorted list of pairs, empty values kept as scraped); `scrapes` a list of
  one target's samples at one time, in time order, each `{series index,
  ts_ms, value}` with `:nan`, `:infinity`, `:neg_infinity` for the special
  floats.
  """
  def load do
    rows = @path |> File.read!() |> :zlib.gunzip() |> String.split("\n", trim: true)

    {rows, seen} =
      Enum.map_reduce(rows, %{}, fn row, seen ->
        [name, labels, ts, value] = String.split(row, "\t")
        key = {name, labels}
        seen = Map.put_new_lazy(seen, key, fn -> map_size(seen) end)
        {{seen[key], String.to_integer(ts), value(value)}, seen}
      end)

    series =
      seen
      |> Enum.sort_by(&elem(&1, 1))
      |> Enum.map(fn {{name, labels}, _} -> {name, parse_labels(labels)} end)
      |> List.to_tuple()

    # A scrape: one target's samples at one timestamp.
    target = fn i ->
      series |> elem(i) |> elem(1) |> Enum.filter(fn {k, _} -> k in ["job", "instance"] end)
    end

    scrapes =
      rows
      |> Enum.group_by(fn {i, ts, _} -> {target.(i), ts} end)
      |> Enum.sort_by(fn {{_target, ts}, _} -> ts end)
      |> Enum.map(fn {_, samples} -> samples end)

    {series, scrapes}
  end

  @doc "Samples in `scrapes`."
  def samples(scrapes), do: scrapes |> Enum.map(&length/1) |> Enum.sum()

  @doc """
  The data replicated to `hosts` hosts by a `host` label, as request bodies:
  `%{text:, json:, rw:, labeled:}` (only the `formats` asked for). Each text
  and JSON-lines body is one scrape of one target; each remote_write body
  about 2,000 samples, as Prometheus' queue sends them; `labeled` is one
  `write_batch` entry list per scrape, a separate labels map per entry
  (with `fmt` = `batch`). `hosts` is a count or a range of host numbers (a
  large workload is built a host at a time).
  """
  def bodies({series, scrapes}, hosts, formats \\ [:text, :json, :rw, :labeled]) do
    hosts = if is_integer(hosts), do: 1..hosts, else: hosts

    per_host =
      for h <- hosts do
        for i <- 0..(tuple_size(series) - 1), into: %{} do
          {name, labels} = elem(series, i)
          {i, prefixes(name, labels ++ [{"host", "h#{h}"}])}
        end
      end

    Map.new(formats, fn format -> {format, build(format, per_host, scrapes)} end)
  end

  defp build(:text, per_host, scrapes) do
    for p <- per_host, scrape <- scrapes do
      for {i, ts, v} <- scrape,
          into: "",
          do: p[i].text <> text_value(v) <> " " <> Integer.to_string(ts) <> "\n"
    end
  end

  defp build(:json, per_host, scrapes) do
    for p <- per_host, scrape <- scrapes do
      for {i, ts, v} <- scrape,
          into: "",
          do: p[i].json <> json_value(v) <> ~s(],"timestamps":[#{ts}]}\n)
    end
  end

  defp build(:rw, per_host, scrapes) do
    for(
      p <- per_host,
      scrape <- scrapes,
      {i, ts, v} <- scrape,
      do: field(1, p[i].rw <> field(2, <<9, bits(v)::binary, 16, varint(ts)::binary>>))
    )
    |> Enum.chunk_every(2_000)
    |> Enum.map(&snappy(IO.iodata_to_binary(&1)))
  end

  defp build(:labeled, per_host, scrapes) do
    for p <- per_host, scrape <- scrapes do
      entries =
        for {i, ts, v} <- scrape do
          {name, labels} = p[i].labeled
          {name, Map.put(labels, "fmt", "batch"), v, ts}
        end

      # A fresh copy, as if decoded from a request, sharing nothing.
      :erlang.binary_to_term(:erlang.term_to_binary(entries))
    end
  end

  # What every sample of a series starts with, in each format.
  defp prefixes(name, labels) do
    text = name <> "{" <> Enum.map_join(labels, ",", fn {k, v} -> ~s(#{k}="#{text_escape(v)}") end) <> "} "

    json =
      ~s({"metric":{) <>
        Enum.map_join([{"__name__", name} | labels], ",", fn {k, v} ->
          json_string(k) <> ":" <> json_string(v)
        end) <> ~s(},"values":[)

    rw =
      for {k, v} <- [{"__name__", name} | labels],
          v != "",
          into: <<>>,
          do: field(1, field(1, k) <> field(2, v))

    %{text: text, json: json, rw: rw, labeled: {name, Map.new(labels)}}
  end

  defp value("nan"), do: :nan
  defp value("inf"), do: :infinity
  defp value("-inf"), do: :neg_infinity
  defp value(v), do: elem(Float.parse(v), 0)

  defp parse_labels(""), do: []

  defp parse_labels(text) do
    text
    |> String.split(~r/(?<!\\),/)
    |> Enum.map(fn kv ->
      [k, v] = String.split(kv, "=", parts: 2)
      {k, unescape(v)}
    end)
  end

  defp unescape(v) do
    v
    |> String.replace("\\,", ",")
    |> String.replace("\\t", "\t")
    |> String.replace("\\n", "\n")
    |> String.replace("\\\\", "\\")
  end

  defp text_value(:nan), do: "NaN"
  defp text_value(:infinity), do: "+Inf"
  defp text_value(:neg_infinity), do: "-Inf"
  defp text_value(v), do: :erlang.float_to_binary(v, [:short])

  defp json_value(:nan), do: ~s("NaN")
  defp json_value(:infinity), do: ~s("+Inf")
  defp json_value(:neg_infinity), do: ~s("-Inf")
  defp json_value(v), do: :erlang.float_to_binary(v, [:short])

  defp text_escape(v) do
    v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")
  end

  defp json_string(v) do
    escaped =
      v
      |> String.replace("\\", "\\\\")
      |> String.replace("\"", "\\\"")
      |> String.replace("\n", "\\n")
      |> String.replace("\t", "\\t")

    "\"" <> escaped <> "\""
  end

  defp bits(:nan), do: <<0x7FF8_0000_0000_0001::little-64>>
  defp bits(:infinity), do: <<0x7FF0_0000_0000_0000::little-64>>
  defp bits(:neg_infinity), do: <<0xFFF0_0000_0000_0000::little-64>>
  defp bits(v), do: <<v::little-float-64>>
end
