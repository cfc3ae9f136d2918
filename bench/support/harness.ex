defmodule Tms.Bench do
  @moduledoc false
  # A small benchmark harness shaped like Benchee's `run(jobs, opts)`
  # (Benchee lives on hex, which our machines cannot reach).
  #
  #   Tms.Bench.run(%{"name" => fun}, warmup: 1, time: 5, items: 10_000, title: "...")
  #
  # Each job runs repeatedly for `warmup` seconds (discarded), then for
  # `time` seconds (measured, at least `min_runs` times). Prints ips,
  # average, median, 99th percentile and the VM memory the job's runs left
  # allocated, plus items/s when `items` (e.g. points per run) is given, and
  # writes the numbers to bench/results/<title>.json.

  def run(jobs, opts \\ []) do
    warmup = Keyword.get(opts, :warmup, 1)
    time = Keyword.get(opts, :time, 5)
    min_runs = Keyword.get(opts, :min_runs, 5)
    items = Keyword.get(opts, :items)
    title = Keyword.get(opts, :title, "bench")

    IO.puts("\n== #{title}  (warmup #{warmup} s, time #{time} s, #{System.schedulers_online()} schedulers)")

    results =
      for {name, fun} <- Enum.sort_by(jobs, &elem(&1, 0)) do
        measure(fun, warmup, 0)
        :erlang.garbage_collect()
        memory_before = :erlang.memory(:total)
        samples = measure(fun, time, min_runs)
        memory = :erlang.memory(:total) - memory_before
        stats(name, samples, memory, items)
      end

    print(results, items)
    save(title, results)
    results
  end

  defp measure(fun, seconds, min_runs) do
    deadline = System.monotonic_time(:microsecond) + round(seconds * 1_000_000)
    loop(fun, deadline, min_runs, [])
  end

  defp loop(fun, deadline, min_runs, acc) do
    {us, _} = :timer.tc(fun)
    acc = [us | acc]

    if length(acc) >= min_runs and System.monotonic_time(:microsecond) >= deadline,
      do: acc,
      else: loop(fun, deadline, min_runs, acc)
  end

  defp stats(name, samples, memory, items) do
    sorted = Enum.sort(samples)
    n = length(sorted)
    average = Enum.sum(sorted) / n
    median = percentile(sorted, 50)

    %{
      name: name,
      runs: n,
      ips: 1_000_000 / average,
      average_us: average,
      median_us: median,
      p99_us: percentile(sorted, 99),
      memory_bytes: memory,
      items_per_s: items && items * 1_000_000 / median
    }
  end

  defp percentile(sorted, p),
    do: Enum.at(sorted, min(length(sorted) - 1, round(p / 100 * (length(sorted) - 1))))

  defp print(results, items) do
    header =
      ["Name", "ips", "average", "median", "99th %", "memory"] ++
        if(items, do: ["items/s (median)"], else: [])

    rows =
      for r <- results do
        [r.name, fmt(r.ips), time(r.average_us), time(r.median_us), time(r.p99_us), bytes(r.memory_bytes)] ++
          if(items, do: [fmt(r.items_per_s)], else: [])
      end

    widths =
      for col <- Enum.zip([header | rows]),
          do: col |> Tuple.to_list() |> Enum.map(&String.length/1) |> Enum.max()

    for row <- [header | rows] do
      row
      |> Enum.zip(widths)
      |> Enum.map_join("  ", fn {cell, w} -> String.pad_trailing(cell, w) end)
      |> IO.puts()
    end
  end

  defp fmt(x) when x >= 1_000_000, do: "#{Float.round(x / 1_000_000, 2)} M"
  defp fmt(x) when x >= 1_000, do: "#{Float.round(x / 1_000, 2)} K"
  defp fmt(x), do: "#{Float.round(x * 1.0, 2)}"

  defp time(us) when us >= 1_000_000, do: "#{Float.round(us / 1_000_000, 2)} s"
  defp time(us) when us >= 1_000, do: "#{Float.round(us / 1_000, 2)} ms"
  defp time(us), do: "#{Float.round(us * 1.0, 2)} μs"

  defp bytes(b) when abs(b) >= 1_048_576, do: "#{Float.round(b / 1_048_576, 2)} MB"
  defp bytes(b) when abs(b) >= 1024, do: "#{Float.round(b / 1024, 2)} KB"
  defp bytes(b), do: "#{b} B"

  defp save(title, results) do
    dir = Path.expand("../results", __DIR__)
    File.mkdir_p!(dir)
    slug = title |> String.downcase() |> String.replace(~r/[^a-z0-9]+/, "_") |> String.trim("_")

    File.write!(
      Path.join(dir, "#{slug}.json"),
      json(%{title: title, machine: machine(), results: results}) <> "\n"
    )
  end

  @doc "The machine, for result files and READMEs."
  def machine do
    cpu =
      case File.read("/proc/cpuinfo") do
        {:ok, text} -> text |> String.split("\n") |> Enum.find_value("unknown", &model/1)
        _ -> "unknown"
      end

    %{cores: System.schedulers_online(), cpu: cpu, otp: System.otp_release(), elixir: System.version()}
  end

  defp model("model name" <> rest),
    do: rest |> String.trim_leading() |> String.trim_leading(":") |> String.trim()

  defp model(_), do: nil

  # Just enough JSON for result files (no hex, so no Jason).
  defp json(map) when is_map(map),
    do: "{" <> Enum.map_join(map, ",", fn {k, v} -> json(to_string(k)) <> ":" <> json(v) end) <> "}"

  defp json(list) when is_list(list), do: "[" <> Enum.map_join(list, ",", &json/1) <> "]"
  defp json(nil), do: "null"
  defp json(b) when is_boolean(b), do: to_string(b)
  defp json(n) when is_integer(n), do: Integer.to_string(n)
  defp json(f) when is_float(f), do: :erlang.float_to_binary(f, [:compact, decimals: 3])
  defp json(s) when is_binary(s), do: inspect(s)
  defp json(a) when is_atom(a), do: json(Atom.to_string(a))
end
