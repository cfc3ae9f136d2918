# Real-data import, Tms in-process against VictoriaMetrics over HTTP, same
# bodies, same run. The scrape in ../shared/data (node_exporter, Prometheus
# and VictoriaMetrics every 2 s for 40 minutes) is replicated to HOSTS hosts
# by a `host` label; each text and JSON-lines body is one scrape of one
# target, each remote_write body about 2,000 samples as Prometheus' queue
# sends them. VictoriaMetrics gets the bodies over 2 keep-alive connections,
# Tms from 2 processes. Every format writes its own series (a `fmt` label,
# VictoriaMetrics' extra_label), so each starts from an empty series set.
#
#   MIX_ENV=bench mix run bench/import.exs            (HOSTS=1 for a quick run)

Code.require_file("support/victoria.ex", __DIR__)
import Bitwise
alias Tms.Bench.Victoria
{:ok, _} = Application.ensure_all_started(:tms)

hosts = String.to_integer(System.get_env("HOSTS", "4"))
data = Path.expand("../../shared/data/real_scrape_2s_40m.tsv.gz", __DIR__)

# ---------------------------------------------------------------- the data

unescape = fn v ->
  v
  |> String.replace("\\,", ",")
  |> String.replace("\\t", "\t")
  |> String.replace("\\n", "\n")
  |> String.replace("\\\\", "\\")
end

parse_labels = fn
  "" ->
    []

  text ->
    text
    |> String.split(~r/(?<!\\),/)
    |> Enum.map(fn kv ->
      [k, v] = String.split(kv, "=", parts: 2)
      {k, unescape.(v)}
    end)
end

{load_us, {series, scrapes}} =
  :timer.tc(fn ->
    rows = data |> File.read!() |> :zlib.gunzip() |> String.split("\n", trim: true)

    {series, rows} =
      Enum.map_reduce(rows, %{}, fn row, seen ->
        [name, labels, ts, value] = String.split(row, "\t")
        key = {name, labels}
        seen = Map.put_new_lazy(seen, key, fn -> map_size(seen) end)

        v =
          case value do
            "nan" -> :nan
            "inf" -> :infinity
            "-inf" -> :neg_infinity
            v -> elem(Float.parse(v), 0)
          end

        {{seen[key], String.to_integer(ts), v}, seen}
      end)
      |> then(fn {rows, seen} -> {seen, rows} end)

    series =
      series
      |> Enum.sort_by(&elem(&1, 1))
      |> Enum.map(fn {{name, labels}, _} -> {name, parse_labels.(labels)} end)
      |> List.to_tuple()

    # A scrape: one target's samples at one timestamp.
    target = fn i ->
      series |> elem(i) |> elem(1) |> Enum.filter(fn {k, _} -> k in ["job", "instance"] end)
    end

    scrapes = rows |> Enum.group_by(fn {i, ts, _} -> {target.(i), ts} end) |> Map.values()
    {series, scrapes}
  end)

samples_per_host = scrapes |> Enum.map(&length/1) |> Enum.sum()
total = samples_per_host * hosts

IO.puts(
  "#{tuple_size(series)} series, #{length(scrapes)} scrapes, #{samples_per_host} samples per host, x#{hosts} hosts = #{total} samples (loaded in #{div(load_us, 1_000_000)} s)"
)

# ---------------------------------------------------------------- bodies

text_value = fn
  :nan -> "NaN"
  :infinity -> "+Inf"
  :neg_infinity -> "-Inf"
  v -> :erlang.float_to_binary(v, [:short])
end

json_value = fn
  :nan -> ~s("NaN")
  :infinity -> ~s("+Inf")
  :neg_infinity -> ~s("-Inf")
  v -> :erlang.float_to_binary(v, [:short])
end

text_escape = fn v ->
  v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")
end

json_string = fn v ->
  escaped =
    v
    |> String.replace("\\", "\\\\")
    |> String.replace("\"", "\\\"")
    |> String.replace("\n", "\\n")
    |> String.replace("\t", "\\t")

  "\"" <> escaped <> "\""
end

host_labels = fn i, h -> (series |> elem(i) |> elem(1)) ++ [{"host", "h#{h}"}] end

varint = fn varint, n ->
  if n < 128, do: <<n>>, else: <<(n &&& 127) ||| 128, varint.(varint, n >>> 7)::binary>>
end

varint = &varint.(varint, &1)
field = fn n, bytes -> <<varint.(n * 8 + 2)::binary, varint.(byte_size(bytes))::binary, bytes::binary>> end
# Snappy's block format with literals only (the bench has no snappy library);
# both servers decompress it the same way.
snappy = fn data ->
  chunks = for <<c::binary-size(60) <- data>>, into: <<>>, do: <<59 <<< 2, c::binary>>
  rest = binary_part(data, div(byte_size(data), 60) * 60, rem(byte_size(data), 60))
  tail = if rest == "", do: "", else: <<(byte_size(rest) - 1) <<< 2, rest::binary>>
  varint.(byte_size(data)) <> chunks <> tail
end

bits = fn
  :nan -> <<0x7FF8_0000_0000_0001::little-64>>
  :infinity -> <<0x7FF0_0000_0000_0000::little-64>>
  :neg_infinity -> <<0xFFF0_0000_0000_0000::little-64>>
  v -> <<v::little-float-64>>
end

{gen_us, {text, json, rw, labeled}} =
  :timer.tc(fn ->
    per_host =
      for h <- 1..hosts do
        prefix =
          for i <- 0..(tuple_size(series) - 1), into: %{} do
            {name, _} = elem(series, i)
            labels = host_labels.(i, h)

            t =
              name <>
                "{" <> Enum.map_join(labels, ",", fn {k, v} -> ~s(#{k}="#{text_escape.(v)}") end) <> "} "

            j =
              ~s({"metric":{) <>
                Enum.map_join([{"__name__", name} | labels], ",", fn {k, v} ->
                  json_string.(k) <> ":" <> json_string.(v)
                end) <> ~s(},"values":[)

            r =
              for {k, v} <- [{"__name__", name} | labels],
                  v != "",
                  into: <<>>,
                  do: field.(1, field.(1, k) <> field.(2, v))

            {i, {t, j, r, {name, Map.new(labels)}}}
          end

        {h, prefix}
      end

    text =
      for {_h, p} <- per_host, scrape <- scrapes do
        for {i, ts, v} <- scrape,
            into: "",
            do: elem(p[i], 0) <> text_value.(v) <> " " <> Integer.to_string(ts) <> "\n"
      end

    json =
      for {_h, p} <- per_host, scrape <- scrapes do
        for {i, ts, v} <- scrape,
            into: "",
            do: elem(p[i], 1) <> json_value.(v) <> ~s(],"timestamps":[#{ts}]}\n)
      end

    rw =
      for(
        {_h, p} <- per_host,
        scrape <- scrapes,
        {i, ts, v} <- scrape,
        do: field.(1, elem(p[i], 2) <> field.(2, <<9, bits.(v)::binary, 16, varint.(ts)::binary>>))
      )
      |> Enum.chunk_every(2_000)
      |> Enum.map(&snappy.(IO.iodata_to_binary(&1)))

    # A separate labels map per entry, as a scraper or importer has them.
    labeled =
      for {_h, p} <- per_host, scrape <- scrapes do
        entries =
          for {i, ts, v} <- scrape,
              do: {elem(elem(p[i], 3), 0), Map.put(elem(elem(p[i], 3), 1), "fmt", "batch"), v, ts}

        :erlang.binary_to_term(:erlang.term_to_binary(entries))
      end

    {text, json, rw, labeled}
  end)

IO.puts(
  "bodies: #{length(text)} text, #{length(json)} JSON lines, #{length(rw)} remote_write, generated in #{div(gen_us, 1_000_000)} s"
)

# ---------------------------------------------------------------- runs

# Two callers, each taking every other body; samples/s over the wall time.
two = fn bodies, fun ->
  {a, b} = bodies |> Enum.with_index() |> Enum.split_with(fn {_, i} -> rem(i, 2) == 0 end)
  parent = self()

  # Spawning copies each caller's part (terms, for write_batch) into its
  # heap before the clock starts, which a :go message does. The heap is
  # sized to twice the part: a caller holding a whole run's entries (over a
  # gigabyte of maps) would otherwise spend the timed run copying them in
  # its own garbage collections, which measures the bench, not the store.
  callers =
    for part <- [a, b] do
      :erlang.spawn_opt(
        fn ->
          receive do
            :go ->
              Enum.each(part, fn {body, _} -> fun.(body) end)
              send(parent, {:done, self()})
          end
        end,
        [:monitor, min_heap_size: 2 * :erts_debug.flat_size(part) + 100_000]
      )
    end

  {us, _} =
    :timer.tc(fn ->
      Enum.each(callers, fn {pid, _} -> send(pid, :go) end)

      Enum.each(callers, fn {pid, ref} ->
        receive do
          {:done, ^pid} -> Process.demonitor(ref, [:flush])
          {:DOWN, ^ref, :process, _, reason} -> raise "a caller failed: #{inspect(reason)}"
        end
      end)
    end)

  total / (us / 1_000_000)
end

vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_import_vm"), 18_429)
:httpc.set_options(max_sessions: 2, max_keep_alive_length: 100_000)
vm_text = two.(text, fn b -> 204 = Victoria.post(vm, "/api/v1/import/prometheus?extra_label=fmt=text", b) end)

vm_rw =
  two.(rw, fn b ->
    204 = Victoria.post(vm, "/api/v1/write?extra_label=fmt=rw", b, ~c"application/x-protobuf")
  end)

vm_json = two.(json, fn b -> 204 = Victoria.post(vm, "/api/v1/import?extra_label=fmt=json", b) end)
Victoria.stop(vm)

dir = Path.join(System.tmp_dir!(), "tms_bench_import")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :imp, data_dir: dir, max_buffered_points: 200_000_000)

tms_text =
  two.(text, fn b -> {:ok, _} = Tms.import(:imp, :prometheus_text, b, labels: %{"fmt" => "text"}) end)

tms_rw = two.(rw, fn b -> {:ok, _} = Tms.import(:imp, :remote_write, b, labels: %{"fmt" => "rw"}) end)
tms_json = two.(json, fn b -> {:ok, _} = Tms.import(:imp, :json_lines, b, labels: %{"fmt" => "json"}) end)
tms_batch = two.(labeled, fn b -> :ok = Tms.write_batch(:imp, b) end)
info = Tms.info!(:imp)
:ok = Tms.stop(:imp)
File.rm_rf!(dir)

m = fn rate -> "#{Float.round(rate / 1_000_000, 2)} M samples/s" end
x = fn a, b -> "#{Float.round(a / b, 2)}x" end

IO.puts("""

| format | VictoriaMetrics 1.79 (HTTP, 2 connections) | Tms (in-process, 2 callers) | ratio |
|---|---|---|---|
| Prometheus text | #{m.(vm_text)} | #{m.(tms_text)} | #{x.(tms_text, vm_text)} |
| remote_write | #{m.(vm_rw)} | #{m.(tms_rw)} | #{x.(tms_rw, vm_rw)} |
| JSON lines | #{m.(vm_json)} | #{m.(tms_json)} | #{x.(tms_json, vm_json)} |
| labeled write_batch, a labels map per entry, vs VictoriaMetrics' text | #{m.(vm_text)} | #{m.(tms_batch)} | #{x.(tms_batch, vm_text)} |

Tms series: #{info.series} (4 formats x #{hosts} hosts x #{tuple_size(series)} series, empty label values dropped)
""")
