defmodule Tms.Workload do
  @moduledoc false
  # A deterministic workload shaped like TSBS "devops": hosts with ~10
  # labels each, a mix of gauges (bounded random walks at the precision
  # exporters report) and counters (increasing integers with rare resets),
  # scraped every interval with tens of milliseconds of jitter.
  # Shared by bin/demo.exs and the scripts in bench/.

  defstruct [:hosts, :metrics, :interval, :start, :seed, :series]

  @gauges [
    {"cpu_usage_percent", 0.0, 100.0, 2.5},
    {"mem_used_percent", 5.0, 95.0, 0.4},
    {"disk_used_percent", 10.0, 90.0, 0.05},
    {"load_average_1m", 0.0, 32.0, 0.3},
    {"temperature_celsius", 30.0, 85.0, 0.2}
  ]
  @counters [
    {"net_rx_bytes_total", 250_000},
    {"net_tx_bytes_total", 120_000},
    {"disk_read_bytes_total", 40_000},
    {"http_requests_total", 300},
    {"http_errors_total", 3}
  ]
  @regions ~w(eu-west-1 eu-central-1 us-east-1 us-west-2 ap-south-1)
  @services ~w(api web worker db cache)
  @teams ~w(core payments search growth infra)

  @doc "A workload of `hosts` x `metrics` series (metrics <= 10) starting at `start` ms."
  def new(opts) do
    hosts = Keyword.get(opts, :hosts, 100)
    metrics = Keyword.get(opts, :metrics, 10)
    kinds = Enum.take(Enum.map(@gauges, &{:gauge, &1}) ++ Enum.map(@counters, &{:counter, &1}), metrics)

    series =
      for h <- 0..(hosts - 1), {kind, spec} <- kinds do
        {kind, spec, elem(spec, 0), host_labels(h)}
      end

    %__MODULE__{
      hosts: hosts,
      metrics: metrics,
      interval: Keyword.get(opts, :interval, 10_000),
      start: Keyword.get(opts, :start, 1_763_800_000_000),
      seed: Keyword.get(opts, :seed, 42),
      series: series
    }
  end

  defp host_labels(h) do
    region = Enum.at(@regions, rem(h, 5))

    %{
      "hostname" => "host_#{h}",
      "region" => region,
      "datacenter" => "#{region}#{<<?a + rem(div(h, 5), 3)>>}",
      "rack" => Integer.to_string(rem(h, 37)),
      "os" => Enum.at(~w(ubuntu-22.04 ubuntu-24.04 debian-12), rem(h, 3)),
      "arch" => Enum.at(~w(x64 arm64), rem(h, 2)),
      "team" => Enum.at(@teams, rem(div(h, 3), 5)),
      "service" => Enum.at(@services, rem(div(h, 7), 5)),
      "service_version" => Integer.to_string(rem(h, 4)),
      "environment" => Enum.at(~w(production staging), if(rem(h, 10) == 0, do: 1, else: 0))
    }
  end

  @doc "`[{metric, labels}]` in series order."
  def series(w), do: Enum.map(w.series, fn {_, _, metric, labels} -> {metric, labels} end)

  @doc """
  A stream of scrapes: each is `{ts_list, values}` where element i of both
  lists belongs to series i. `steps` scrapes in all.
  """
  def scrapes(w, steps) do
    :rand.seed(:exsss, {w.seed, 7, 13})
    initial = Enum.map(w.series, &initial_value/1)

    Stream.unfold({0, initial}, fn
      {^steps, _} ->
        nil

      {step, values} ->
        base = w.start + step * w.interval
        ts = Enum.map(values, fn _ -> base + :rand.uniform(51) - 26 end)
        next = Enum.zip_with(w.series, values, &advance/2)
        {{ts, values}, {step + 1, next}}
    end)
  end

  defp initial_value({:gauge, {_, lo, hi, _}, _, _}), do: Float.round(lo + :rand.uniform() * (hi - lo), 2)
  defp initial_value({:counter, _, _, _}), do: 1.0 * :rand.uniform(1_000_000)

  defp advance({:gauge, {_, lo, hi, step}, _, _}, v) do
    (v + :rand.normal() * step) |> max(lo) |> min(hi) |> Float.round(2)
  end

  defp advance({:counter, {_, rate}, _, _}, v) do
    if :rand.uniform(20_000) == 1, do: 0.0, else: v + :rand.uniform(2 * rate)
  end

  @doc "Labeled entries for one scrape."
  def entries(w, {ts, values}) do
    Enum.zip_with([w.series, ts, values], fn [{_, _, metric, labels}, t, v] -> {metric, labels, v, t} end)
  end

  @doc "A raw batch for one scrape, given series ids in series order."
  def raw(ids, {ts, values}) do
    Enum.zip_with([ids, ts, values], fn [id, t, v] ->
      <<id::little-64, t::little-signed-64, v::little-float-64>>
    end)
    |> IO.iodata_to_binary()
  end

  @doc """
  Writes `steps` scrapes of the workload into `store` as raw batches of
  `scrapes_per_batch` scrapes, resolving the series first. Returns the ids.
  """
  def load_raw(w, store, steps, scrapes_per_batch \\ 10) do
    ids = for {metric, labels} <- series(w), do: elem(Tms.resolve(store, metric, labels), 1)

    w
    |> scrapes(steps)
    |> Stream.chunk_every(scrapes_per_batch)
    |> Enum.each(fn batch -> :ok = Tms.write_batch_raw(store, Enum.map_join(batch, &raw(ids, &1))) end)

    ids
  end
end
