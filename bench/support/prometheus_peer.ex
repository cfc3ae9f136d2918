# The JSON decoder the tests use for Prometheus' answers (OTP 25 has none).
Code.require_file("../../test/support/json.ex", __DIR__)

defmodule Tms.Bench.PrometheusPeer do
  @moduledoc false
  # A real Prometheus (Debian's 2.42) holding the real scrape in
  # ../shared/data, for differential PromQL runs: the TSV backfilled into
  # TSDB blocks with `promtool tsdb create-blocks-from openmetrics`, a
  # `prometheus` with no scrape jobs serving them on 127.0.0.1, and GETs of
  # its HTTP API over :httpc.
  #
  # What promtool 2.42's backfill needs of its OpenMetrics input (checked
  # by hand against the Debian binary):
  #   * a `# EOF` line at the end, or it fails ("data does not end with # EOF");
  #   * a timestamp on every sample, in seconds; it keeps `trunc(seconds *
  #     1000)` ms, which gives back the exact ms for this data's 3-decimal
  #     timestamps (checked below for every timestamp, as a float rounding
  #     elsewhere would be off by one);
  #   * no `# TYPE` lines: without them every family is `unknown` and any
  #     name (`_total`, `_bucket`, `_count`) passes; the backfill ignores
  #     types anyway, so none are written;
  #   * samples of a series in time order: an out-of-order sample is
  #     dropped SILENTLY (exit 0), as is a second sample at the same
  #     timestamp; interleaved families are accepted, but are kept
  #     contiguous here as the format requires. The samples promtool reports
  #     are checked against the samples written, so no silent drop passes.
  #   * empty label values: the TSDB drops them, as a scrape does; they are
  #     left out here already.

  alias Tms.Test.JSON

  @doc """
  The TSV's samples (format in ../shared/data/README.md), one entry per
  series in name, labels order: `{name, labels, [{ts_ms, value_text}]}`,
  `labels` a sorted list of `{key, value}` without empty values, points in
  time order, `value_text` the TSV's own text (`nan`, `inf`, `-inf` kept).
  """
  def read_tsv!(tsv_gz_path) do
    tsv_gz_path
    |> File.read!()
    |> :zlib.gunzip()
    |> String.split("\n", trim: true)
    |> Enum.map(fn row ->
      [name, labels, ts, value] = String.split(row, "\t")
      {{name, labels}, {String.to_integer(ts), value}}
    end)
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Enum.map(fn {{name, labels}, points} ->
      points = Enum.sort_by(points, &elem(&1, 0))
      dups = points |> Enum.chunk_every(2, 1, :discard) |> Enum.filter(fn [{a, _}, {b, _}] -> a == b end)
      dups == [] || raise "#{name}{#{labels}}: two samples at #{inspect(hd(dups))}"
      {name, labels |> parse_labels() |> Enum.reject(&(elem(&1, 1) == "")) |> Enum.sort(), points}
    end)
    |> Enum.sort_by(fn {name, labels, _} -> {name, labels} end)
  end

  @doc """
  Backfills the TSV at `tsv_gz_path` into TSDB blocks in `blocks_dir`,
  unless `blocks_dir` already holds blocks. Raises with promtool's output
  when it fails. Returns `%{blocks: n, min_ms: t0, max_ms: t1, samples: s}`
  from the blocks' meta.json (max_ms the last sample's timestamp).
  """
  def backfill!(tsv_gz_path, blocks_dir) do
    if blocks(blocks_dir) == [] do
      File.mkdir_p!(blocks_dir)
      series = read_tsv!(tsv_gz_path)
      tmp = Path.join(System.tmp_dir!(), "tms_promql_om_#{System.unique_integer([:positive])}")
      File.mkdir_p!(tmp)
      file = Path.join(tmp, "data.om")

      try do
        written = write_openmetrics!(series, file)
        args = ["tsdb", "create-blocks-from", "openmetrics", file, blocks_dir]

        case System.cmd(promtool!(), args, stderr_to_stdout: true) do
          {output, 0} ->
            stored = blocks(blocks_dir) |> Enum.map(& &1["stats"]["numSamples"]) |> Enum.sum()

            stored == written ||
              raise "promtool stored #{stored} of #{written} samples (it drops out-of-order ones " <>
                      "silently):\n#{output}"

          {output, status} ->
            File.rm_rf!(blocks_dir)
            raise "promtool #{Enum.join(args, " ")} failed (exit #{status}):\n#{output}"
        end
      after
        File.rm_rf!(tmp)
      end
    end

    metas = blocks(blocks_dir)

    %{
      blocks: length(metas),
      min_ms: metas |> Enum.map(& &1["minTime"]) |> Enum.min(),
      # A block's maxTime is exclusive.
      max_ms: (metas |> Enum.map(& &1["maxTime"]) |> Enum.max()) - 1,
      samples: metas |> Enum.map(& &1["stats"]["numSamples"]) |> Enum.sum()
    }
  end

  # The meta.json of each block in `dir` (a directory with one).
  defp blocks(dir) do
    for meta <- Path.wildcard(Path.join(dir, "*/meta.json")), do: meta |> File.read!() |> JSON.decode!()
  end

  defp promtool! do
    System.find_executable("promtool") || raise "promtool is not installed (bin/setup installs prometheus)"
  end

  # Writes `series` as OpenMetrics text; returns the samples written.
  defp write_openmetrics!(series, file) do
    File.open!(file, [:write, :binary, :delayed_write], fn io ->
      Enum.reduce(series, 0, fn {name, labels, points}, count ->
        prefix =
          case labels do
            [] ->
              name <> " "

            _ ->
              name <> "{" <> Enum.map_join(labels, ",", fn {k, v} -> ~s(#{k}="#{om_escape(v)}") end) <> "} "
          end

        IO.binwrite(io, for({ts, v} <- points, do: [prefix, om_value(v), " ", om_seconds(ts), "\n"]))
        count + length(points)
      end)
      |> tap(fn _ -> IO.binwrite(io, "# EOF\n") end)
    end)
  end

  defp om_escape(v) do
    v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")
  end

  defp om_value("nan"), do: "NaN"
  defp om_value("inf"), do: "+Inf"
  defp om_value("-inf"), do: "-Inf"
  defp om_value(v), do: v

  # Seconds with the ms as 3 decimals, as long as promtool's trunc(s * 1000)
  # gives the ms back; else half a ms more, which truncates to it.
  defp om_seconds(ts) do
    sign = if ts < 0, do: "-", else: ""
    abs_ts = abs(ts)
    text = sign <> "#{div(abs_ts, 1000)}." <> String.pad_leading("#{rem(abs_ts, 1000)}", 3, "0")

    if ts >= 0 and trunc(String.to_float(text) * 1000) != ts, do: text <> "5", else: text
  end

  # `k=v` pairs joined by `,`; `\\`, `\,`, `\t`, `\n` escapes in values.
  defp parse_labels(""), do: []
  defp parse_labels(text), do: pairs(text, [], [])

  defp pairs("", pair, acc), do: Enum.reverse([pair(pair) | acc])
  defp pairs("," <> rest, pair, acc), do: pairs(rest, [], [pair(pair) | acc])
  defp pairs("\\t" <> rest, pair, acc), do: pairs(rest, ["\t" | pair], acc)
  defp pairs("\\n" <> rest, pair, acc), do: pairs(rest, ["\n" | pair], acc)
  defp pairs("\\" <> <<c, rest::binary>>, pair, acc), do: pairs(rest, [<<c>> | pair], acc)
  defp pairs(<<c, rest::binary>>, pair, acc), do: pairs(rest, [<<c>> | pair], acc)

  defp pair(chars) do
    [k, v] = chars |> Enum.reverse() |> IO.iodata_to_binary() |> String.split("=", parts: 2)
    {k, v}
  end

  @doc """
  Starts `prometheus` on 127.0.0.1:`port` over `blocks_dir` with no scrape
  jobs (and `extra_args` on its command line, such as
  `--web.enable-remote-write-receiver`); waits until it is ready and, when
  `blocks_dir` holds blocks, answers queries with their data. Returns a
  handle for `stop/1`: `%{url:, pid:, port:, dir:}` (`pid` the OS pid).
  """
  def start!(blocks_dir, port, extra_args \\ []) do
    {:ok, _} = Application.ensure_all_started(:inets)
    exe = System.find_executable("prometheus") || raise "prometheus is not installed (bin/setup installs it)"
    url = "http://127.0.0.1:#{port}"
    # Another server on the port would answer for ours: refuse to start then.
    {:error, _} = :httpc.request(String.to_charlist(url <> "/-/ready"))

    dir = Path.join(System.tmp_dir!(), "tms_promql_prom_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    config = Path.join(dir, "prometheus.yml")
    File.write!(config, "")

    port_ref =
      Port.open({:spawn_executable, exe}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: [
          "--config.file=#{config}",
          "--storage.tsdb.path=#{blocks_dir}",
          "--storage.tsdb.retention.time=100y",
          "--web.listen-address=127.0.0.1:#{port}",
          "--query.lookback-delta=5m"
          | extra_args
        ]
      ])

    {:os_pid, pid} = Port.info(port_ref, :os_pid)
    handle = %{url: url, pid: pid, port: port_ref, dir: dir}

    ready? = fn -> match?({200, _}, get(url <> "/-/ready")) end

    has_data? = blocks(blocks_dir) != []

    queryable? = fn ->
      case query(url, "/api/v1/labels", []) do
        {200, %{"data" => [_ | _]}} -> true
        {200, %{"data" => []}} -> not has_data?
        _ -> false
      end
    end

    unless wait(ready?, port_ref, 600) and wait(queryable?, port_ref, 600) do
      output = drain(port_ref, "")
      stop(handle)
      raise "prometheus did not become ready on #{url}:\n#{output}"
    end

    handle
  end

  @doc "Kills the server (kill -9) and removes its config directory."
  def stop(%{pid: pid, port: port_ref, dir: dir}) do
    System.cmd("kill", ["-9", "#{pid}"], stderr_to_stdout: true)

    # The port may close itself on the exit first.
    try do
      Port.close(port_ref)
    rescue
      ArgumentError -> :ok
    end

    File.rm_rf!(dir)
    :ok
  end

  defp wait(check, port_ref, tries) do
    cond do
      check.() -> true
      tries == 0 or Port.info(port_ref) == nil -> false
      true -> Process.sleep(100) && wait(check, port_ref, tries - 1)
    end
  end

  # What the server printed so far (for an error message).
  defp drain(port_ref, acc) do
    receive do
      {^port_ref, {:data, data}} -> drain(port_ref, acc <> data)
      {^port_ref, {:exit_status, status}} -> acc <> "\n(exit status #{status})"
    after
      0 -> acc
    end
  end

  @doc """
  GETs `base_url <> path` with `params` (a keyword or pair list, values
  strings or numbers) as the query string; `{status, decoded JSON}`. A body
  that is not JSON comes back as `%{"status" => "error", "errorType" =>
  "not_json", "error" => body}`, a failed connection as status 0 with
  errorType `"connection"`.
  """
  def query(base_url, path, params) do
    qs = params |> Enum.map(fn {k, v} -> {to_string(k), to_string(v)} end) |> URI.encode_query(:rfc3986)
    url = if qs == "", do: base_url <> path, else: base_url <> path <> "?" <> qs

    case get(url) do
      {:error, reason} ->
        {0, %{"status" => "error", "errorType" => "connection", "error" => inspect(reason)}}

      {status, body} ->
        try do
          {status, JSON.decode!(body)}
        rescue
          _ ->
            {status, %{"status" => "error", "errorType" => "not_json", "error" => String.slice(body, 0, 300)}}
        end
    end
  end

  defp get(url) do
    case :httpc.request(:get, {String.to_charlist(url), []}, [timeout: 120_000], body_format: :binary) do
      {:ok, {{_, status, _}, _headers, body}} -> {status, body}
      {:error, _} = e -> e
    end
  end
end
