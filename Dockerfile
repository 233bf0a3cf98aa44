# churnstream image: worker, api, replay and simulate all run from it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY state ./state
COPY stream ./stream
COPY api ./api
COPY offline ./offline
COPY services ./services
COPY cli ./cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 churn
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER churn
WORKDIR /home/churn
ENV CHURN_STATE_DIR=/home/churn/.churnstream
ENTRYPOINT ["churnstream"]
CMD ["--help"]
