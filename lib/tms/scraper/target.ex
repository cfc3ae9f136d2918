defmodule Tms.Scraper.Target do
  @moduledoc false
  # One target of a scrape job: scrapes on a fixed schedule (no drift: the
  # next scrape is due an interval after the last one was due) and writes
  # what it got, then the target's up/duration/samples series.

  use GenServer

  def start_link({store, job, target}), do: GenServer.start_link(__MODULE__, {store, job, target})

  @impl true
  def init({store, job, target}) do
    labels = Map.merge(job.labels, %{"job" => job.job, "instance" => target})
    offset = :erlang.phash2({job.job, target}, job.interval)
    due = System.monotonic_time(:millisecond) + offset
    Process.send_after(self(), :scrape, offset)

    {:ok,
     %{
       store: store,
       job: job,
       url: String.to_charlist("http://#{target}#{job.path}"),
       labels: labels,
       due: due
     }}
  end

  @impl true
  def handle_info(:scrape, state) do
    # A store that is not running (yet, or restarting) skips this tick.
    with {:ok, %{time_unit: unit}} <- Tms.info(state.store), do: scrape(state, unit)
    # Ticks missed while a scrape ran long are skipped, not caught up on.
    now = System.monotonic_time(:millisecond)
    interval = state.job.interval
    due = state.due + interval * max(1, div(now - state.due, interval) + 1)
    Process.send_after(self(), :scrape, max(due - now, 0))
    {:noreply, %{state | due: due}}
  end

  defp scrape(state, unit) do
    ts = System.os_time(unit)
    started = System.monotonic_time(:microsecond)
    headers = [{~c"accept", ~c"text/plain;version=0.0.4"}]
    http = [timeout: state.job.timeout, connect_timeout: state.job.timeout]

    result =
      with {:ok, {{_, 200, _}, _, body}} <-
             :httpc.request(:get, {state.url, headers}, http, body_format: :binary),
           {:ok, %{samples: samples}} <-
             Tms.import(state.store, :prometheus_text, body,
               labels: state.labels,
               timestamp: ts,
               rename_clashing: true
             ) do
        {:ok, samples}
      end

    seconds = (System.monotonic_time(:microsecond) - started) / 1_000_000

    entries =
      case result do
        {:ok, samples} ->
          [
            {"up", state.labels, 1.0, ts},
            {"scrape_duration_seconds", state.labels, seconds, ts},
            {"scrape_samples_scraped", state.labels, samples * 1.0, ts}
          ]

        _failed ->
          [{"up", state.labels, 0.0, ts}]
      end

    _ = Tms.write_batch(state.store, entries)
  end
end
